'use strict';
/*
 * smtpfault.js - SmtpFault (a server: started here, or one that already runs) and Scope (a virtual server
 * inside it, with its own ports, profile, messages and sessions).
 *
 * One admin connection per SmtpFault carries its commands and creates its scopes, so that closing it ends
 * every scope made through it (except those created with keep). messages.wait and events.subscribe hold
 * their connection: each wait and each event stream opens one of its own.
 */
const { Connection } = require('./connection');
const { SmtpFaultError } = require('./errors');
const { DEFAULT_ADMIN, parseAddress, listener } = require('./address');
const { spawnServer, stopServer } = require('./process');
const { profileArgs } = require('./profile');
const { Target, fields, mapListeners, defaultMap } = require('./target');

class Scope extends Target {
    constructor(client, created) {
        super(client, created.scope);
        this.id = created.scope;
        this.keep = created.keep;
        Object.assign(this, mapListeners(created.listeners, client._map));
        this.closed = false;
    }

    /* close() - scope.delete: its ports refuse, its sessions close, its messages are gone. Closing twice is a no-op. */
    async close() {
        if (this.closed) {
            return;
        }
        this.closed = true;
        try {
            await this._request('scope.delete', { scope: this.id });
        } catch (err) {
            if (err.code !== 'not_found' && err.code !== 'disconnected') { // ended already
                throw err;
            }
        }
    }
}

class SmtpFault extends Target {
    constructor(connection, admin, options) {
        super(null, undefined);
        this._client = this;
        this._connection = connection;
        this._adminAddress = admin;
        this._token = options.token;
        this._map = options.mapAddress || defaultMap;
        this._process = null;
        this.admin = admin.path !== undefined ? admin.address : listener(admin.host, admin.port);
    }

    /*
     * SmtpFault.start(options) - run the binary (options.bin, else SMTPFAULT_BIN, else smtpfault on PATH)
     * with every listener on a free loopback port, and connect. options: args (more server options), env,
     * token, log ('pipe' or 'inherit'), startTimeoutMs.
     */
    static async start(options = {}) {
        const started = await spawnServer(options);
        const { ports } = started;
        try {
            const sf = await SmtpFault.connect({ admin: ports.admin.address, token: options.token, _ports: ports });
            sf._process = started;
            return sf;
        } catch (err) {
            await stopServer(started.child, started.dir);
            throw err;
        }
    }

    /*
     * SmtpFault.connect({admin, token, mapAddress}) - a server that runs already. admin: HOST:PORT,
     * [IPV6]:PORT or unix:PATH (default SMTPFAULT_ADMIN, else 127.0.0.1:2580); token: default
     * SMTPFAULT_ADMIN_TOKEN. mapAddress({name, host, port}) -> {host, port}: where this machine reaches a
     * listener the server reports (a container's published ports).
     */
    static async connect(options = {}) {
        const admin = parseAddress(options.admin || process.env.SMTPFAULT_ADMIN || DEFAULT_ADMIN);
        const token = options.token !== undefined ? options.token : process.env.SMTPFAULT_ADMIN_TOKEN;
        const connection = await Connection.open(admin, { token });
        const sf = new SmtpFault(connection, admin, { token, mapAddress: options.mapAddress });
        try {
            await sf._connection.request('ping');
            let described = options._ports;
            if (!described) { // the listeners stats reports, as HOST:PORT
                described = {};
                const { listeners } = await sf._connection.request('stats');
                for (const [name, l] of Object.entries(listeners || {})) {
                    if (l && l.address) {
                        described[name] = parseAddress(l.address);
                    }
                }
            }
            Object.assign(sf, mapListeners(described, sf._map));
            await sf._fetchCa();
        } catch (err) {
            connection.socket.destroy();
            throw err;
        }
        return sf;
    }

    _open() {
        return Connection.open(this._adminAddress, { token: this._token });
    }

    /* ping() - true when the server answers */
    async ping() {
        return (await this._request('ping')).pong;
    }

    /* version() - {version, libuv, wolfssl, cjson, ...} */
    async version() {
        return fields(await this._request('version'));
    }

    /*
     * createScope({profile, name, path, source, listeners, keep}) - a new scope with its own listeners.
     * profile: an object, a file here or a shipped name (as loadProfile); name/path: a shipped profile or a
     * file on the server's side. listeners: a subset of ['smtp', 'submission', 'smtps']. keep: outlive this
     * SmtpFault's connection (until scope.close() or the server stops).
     */
    async createScope({ profile, name, path, source, listeners, keep } = {}) {
        const args = profile !== undefined ? profileArgs(profile, source) : { name, path, source };
        const created = await this._connection.request('scope.create', { ...args, listeners, keep });
        const scope = new Scope(this, created);
        await scope._fetchCa();
        return scope;
    }

    /* scope(id) - a Scope for a scope that exists (one created with keep by another connection) */
    async scope(id) {
        const found = (await this.scopes()).find(s => s.scope === id);
        if (!found) {
            throw new SmtpFaultError('not_found', `no scope has the id ${JSON.stringify(id)}`, { command: 'scope.list' });
        }
        const scope = new Scope(this, found);
        await scope._fetchCa();
        return scope;
    }

    /* scopes() - every scope of the server (scope.list) */
    async scopes() {
        return (await this._request('scope.list')).scopes;
    }

    /*
     * close() - end the admin connection (and with it the scopes it created) and, for a server started
     * here, stop it (SIGTERM, then wait for it to exit). Resolves to the server's exit code or signal.
     */
    async close() {
        await this._connection.close();
        if (this._process) {
            const started = this._process;
            this._process = null;
            return stopServer(started.child, started.dir);
        }
        return null;
    }

    /* log() - what a server started here wrote on stderr lately (with log: 'pipe') */
    log() {
        return this._process ? this._process.log() : '';
    }

    /* pid - the process id of a server started here, else null */
    get pid() {
        return this._process ? this._process.child.pid : null;
    }
}

module.exports = { SmtpFault, Scope, SmtpFaultError };
