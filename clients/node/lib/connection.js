'use strict';
/*
 * connection.js - one admin socket connection: newline-delimited JSON requests with ids, responses matched
 * by id, and the event lines of events.subscribe handed to a listener.
 *
 * The server answers one connection's requests in order, and a pending messages.wait holds the requests
 * behind it: callers give each wait and each event stream a connection of its own.
 */
const net = require('node:net');
const { SmtpFaultError, fromResponse } = require('./errors');

const CONNECT_TIMEOUT_MS = 10000;

class Connection {
    /* Connection.open(address, {token}) - a connected Connection; address is {host, port} or {path} */
    static open(address, { token, connectTimeoutMs = CONNECT_TIMEOUT_MS } = {}) {
        return new Promise((resolve, reject) => {
            const socket = address.path !== undefined ? net.connect(address.path) : net.connect(address.port, address.host);
            const where = address.path !== undefined ? `unix:${address.path}` : address.address || `${address.host}:${address.port}`;
            const fail = err => {
                socket.destroy();
                reject(new SmtpFaultError('disconnected', `cannot connect to the admin socket ${where}: ${err.message}`));
            };
            const timer = setTimeout(() => fail(new Error('timed out')), connectTimeoutMs);
            socket.once('error', fail);
            socket.once('connect', () => {
                clearTimeout(timer);
                socket.removeListener('error', fail);
                resolve(new Connection(socket, where, token));
            });
        });
    }

    constructor(socket, where, token) {
        this.where = where;
        this.token = token;
        this.socket = socket;
        this.nextId = 1;
        this.pending = new Map(); // id -> {resolve, reject, command}, in the order sent
        this.onEvent = null;
        this.buffered = '';
        this.isClosed = false;
        this.closed = new Promise(resolve => {
            socket.on('close', () => {
                this.isClosed = true;
                const err = new SmtpFaultError('disconnected', `the admin connection to ${where} closed`);
                for (const { reject, command } of this.pending.values()) {
                    err.command = command;
                    reject(err);
                }
                this.pending.clear();
                resolve();
            });
        });
        socket.setEncoding('utf8');
        socket.setNoDelay(true);
        socket.on('error', () => {}); // reported to the pending requests by 'close'
        socket.on('data', chunk => this.receive(chunk));
    }

    receive(chunk) {
        this.buffered += chunk;
        for (let nl; (nl = this.buffered.indexOf('\n')) >= 0;) {
            const line = this.buffered.slice(0, nl);
            this.buffered = this.buffered.slice(nl + 1);
            if (line.trim() === '') {
                continue;
            }
            let value;
            try {
                value = JSON.parse(line);
            } catch (err) {
                // Not the admin socket (a wrong port): end the connection, which fails what is pending.
                this.socket.destroy();
                return;
            }
            this.dispatch(value);
        }
    }

    dispatch(value) {
        if (!('ok' in value)) { // an event line of events.subscribe
            if (this.onEvent) {
                this.onEvent(value);
            }
            return;
        }
        // Responses come in request order: one without our id (a line the server could not read) is the oldest's.
        const id = this.pending.has(value.id) ? value.id : this.pending.keys().next().value;
        const waiter = this.pending.get(id);
        if (!waiter) {
            return;
        }
        this.pending.delete(id);
        if (value.ok) {
            waiter.resolve(value);
        } else {
            waiter.reject(fromResponse(waiter.command, value));
        }
    }

    /* request(command, args) - the server's response to {cmd: command, ...args}; a failed one rejects */
    request(command, args = {}) {
        if (this.isClosed) {
            return Promise.reject(new SmtpFaultError('disconnected', `the admin connection to ${this.where} is closed`,
                { command }));
        }
        const id = this.nextId++;
        // The token first: before a request has carried it, the server reads at most 64 KiB of a line.
        const request = this.token !== undefined ? { token: this.token, id, cmd: command } : { id, cmd: command };
        for (const [key, value] of Object.entries(args)) {
            if (value !== undefined) {
                request[key] = value;
            }
        }
        return new Promise((resolve, reject) => {
            this.pending.set(id, { resolve, reject, command });
            this.socket.write(JSON.stringify(request) + '\n');
        });
    }

    /* close() - end the connection; resolves once it is closed */
    close() {
        if (!this.isClosed) {
            this.socket.end();
            const timer = setTimeout(() => this.socket.destroy(), 2000);
            this.closed.then(() => clearTimeout(timer));
        }
        return this.closed;
    }
}

module.exports = { Connection };
