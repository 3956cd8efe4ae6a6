'use strict';
/*
 * target.js - Target: the commands that act on a server's state (profile, messages, sessions, stats,
 * events, reset), shared by SmtpFault (the server's own listeners) and Scope (one scope's): a Scope sends
 * the same commands with its "scope" id.
 */
const { AssertionError } = require('node:assert');
const { EventStream } = require('./events');
const { profileArgs } = require('./profile');
const { listener, reachable } = require('./address');
const { assertReport } = require('./report');

const DEFAULT_WAIT_MS = 10000;
const LISTENERS = ['smtp', 'submission', 'smtps'];
const SETTLE_MS = 5000; // how long assertClient waits for the client's open sessions (the server lingers 2 s)
const POLL_MS = 20;

/* fields(response) - a response without its id and ok */
function fields(response) {
    const { id, ok, ...rest } = response; // eslint-disable-line no-unused-vars
    return rest;
}

/* fullMessage(response) - messages.get's answer as one object: the envelope, headers, body and subject */
function fullMessage(response) {
    const { message, ...content } = fields(response);
    const subject = (content.headers || []).find(([name]) => name.toLowerCase() === 'subject');
    return { ...message, ...content, subject: subject ? subject[1] : null };
}

/* mapListeners(described, map) - {smtp, submission, smtps} as {host, port, address} a client here reaches */
function mapListeners(described, map) {
    const out = {};
    for (const name of LISTENERS) {
        const l = described && described[name];
        if (!l) {
            out[name] = null;
            continue;
        }
        const mapped = map({ name, host: l.host, port: l.port });
        out[name] = listener(mapped.host, mapped.port);
    }
    return out;
}

/* defaultMap - listeners bound to every interface are reached on loopback */
const defaultMap = ({ host, port }) => ({ host: reachable(host), port });

class Target {
    constructor(client, scope) {
        this._client = client;
        this._scope = scope; // undefined: the server's own listeners
        this.ca = null;
        this.smtp = null;
        this.submission = null;
        this.smtps = null;
    }

    _request(command, args = {}) {
        return this._client._connection.request(command, { ...args, scope: this._scope });
    }

    async _fetchCa() {
        try {
            this.ca = (await this._request('tls.ca')).pem;
        } catch (err) {
            if (err.code !== 'unavailable') { // --no-tls
                throw err;
            }
            this.ca = null;
        }
    }

    /* stats() - sessions, messages, bytes, faults fired, listeners */
    async stats() {
        return fields(await this._request('stats'));
    }

    /* loadProfile(profile, {source}) - put a profile in force: an object, a file here, or a shipped name */
    async loadProfile(profile, { source } = {}) {
        return fields(await this._request('profile.load', profileArgs(profile, source)));
    }

    /* validateProfile(profile, {source}) - check a profile without loading it */
    async validateProfile(profile, { source } = {}) {
        return fields(await this._request('profile.validate', profileArgs(profile, source)));
    }

    /* getProfile() - the profile in force: {name, rules, ..., profile} */
    async getProfile() {
        return fields(await this._request('profile.get'));
    }

    /* clearProfile() - no rules */
    async clearProfile() {
        await this._request('profile.clear');
    }

    /* messages({to, from, subject, since, limit}) - the captured envelopes, oldest first (globs) */
    async messages({ to, from, subject, since, limit } = {}) {
        return (await this._request('messages.list', { to, from, subject, since, limit })).messages;
    }

    /* message(id, {raw}) - one message: its envelope, headers, body (body_base64 when not UTF-8), subject */
    async message(id, { raw } = {}) {
        return fullMessage(await this._request('messages.get', { message: id, raw }));
    }

    /* deleteMessage(id) - forget one message */
    async deleteMessage(id) {
        await this._request('messages.delete', { message: id });
    }

    /* clearMessages() - forget every message; how many were forgotten */
    async clearMessages() {
        return (await this._request('messages.clear')).cleared;
    }

    /*
     * waitForMessage({to, from, subject, since, timeout}) - the first matching message (as message() gives it), kept
     * already or arriving within timeout ms (default 10000); SmtpFaultError 'timeout' otherwise. It waits
     * on a connection of its own, so other commands go on meanwhile.
     */
    async waitForMessage({ to, from, subject, since, timeout = DEFAULT_WAIT_MS, raw } = {}) {
        const connection = await this._client._open();
        let envelope;
        try {
            envelope = (await connection.request('messages.wait',
                { to, from, subject, since, timeout: timeout / 1000, scope: this._scope })).message;
        } finally {
            connection.socket.destroy();
        }
        return this.message(envelope.id, { raw });
    }

    /* sessions() - {live, recent}: the open sessions and the last closed ones, newest first */
    async sessions() {
        return fields(await this._request('sessions.list'));
    }

    /* session(id) - one session with its transcript */
    async session(id) {
        return (await this._request('sessions.get', { session: id })).session;
    }

    /* events() - every session event as it happens, as an async iterable (see EventStream) */
    events() {
        return new EventStream(() => this._client._open(), this._scope);
    }

    /*
     * _assertReport(expect, client) - assertReport on client.report, once the client's open sessions have
     * ended (a session's findings join the story when it ends) or SETTLE_MS passed.
     */
    async _assertReport(expect, client) {
        const deadline = Date.now() + SETTLE_MS;
        const open = s => client === undefined ||
            s.client.slice(0, s.client.lastIndexOf(':')).replace(/^\[|\]$/g, '') === client;
        while ((await this.sessions()).live.some(open) && Date.now() < deadline) {
            await new Promise(resolve => setTimeout(resolve, POLL_MS));
        }
        let report;
        try {
            report = (await this._request('client.report', { client })).report;
        } catch (err) {
            if (err.code !== 'not_found') {
                throw err;
            }
            throw new AssertionError({ message: `smtpfault saw no try of this client: ${err.message}` });
        }
        return assertReport(report, expect);
    }

    /* reset() - the start profile, fresh counters, no messages */
    async reset() {
        return fields(await this._request('reset'));
    }
}

module.exports = { Target, fields, mapListeners, defaultMap };
