'use strict';
/*
 * events.js - EventStream: events.subscribe on a connection of its own, as an async iterable. It subscribes
 * as soon as it is made (await stream.ready to know the server sends to it); breaking out of a for await
 * loop, or close(), ends the connection. A scope's stream ends after the scope's scope_end event.
 */

class EventStream {
    constructor(openConnection, scope) {
        this.queue = [];
        this.wake = null;
        this.ended = false;
        this.error = null;
        this.connection = null;
        this.ready = (async () => {
            this.connection = await openConnection();
            this.connection.onEvent = event => this.push(event);
            this.connection.closed.then(() => this.finish());
            await this.connection.request('events.subscribe', { scope });
            if (this.ended) { // close() came first
                this.connection.socket.destroy();
            }
        })();
        this.ready.catch(err => this.finish(err));
    }

    push(event) {
        this.queue.push(event);
        this.notify();
    }

    finish(err) {
        if (err && !this.ended) {
            this.error = err;
        }
        this.ended = true;
        this.notify();
    }

    notify() {
        if (this.wake) {
            this.wake();
            this.wake = null;
        }
    }

    /* next() - the next event; done once the stream is closed, the connection ends or the scope ended */
    async next() {
        for (;;) {
            if (this.queue.length > 0) {
                const event = this.queue.shift();
                if (event.event === 'scope_end') {
                    this.close();
                }
                return { value: event, done: false };
            }
            if (this.error) {
                const err = this.error;
                this.error = null;
                throw err;
            }
            if (this.ended) {
                return { value: undefined, done: true };
            }
            await new Promise(resolve => { this.wake = resolve; });
        }
    }

    /* close() - stop receiving; events already received are dropped */
    close() {
        this.ended = true;
        this.queue.length = 0;
        if (this.connection) {
            this.connection.socket.destroy();
        }
        this.notify();
        return Promise.resolve();
    }

    async return() {
        await this.close();
        return { value: undefined, done: true };
    }

    [Symbol.asyncIterator]() {
        return this;
    }
}

module.exports = { EventStream };
