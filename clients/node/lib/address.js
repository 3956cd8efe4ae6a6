'use strict';
/* address.js - the address forms smtpfault uses: HOST:PORT, [IPV6]:PORT and unix:PATH. */

const DEFAULT_ADMIN = '127.0.0.1:2580';

/* parseAddress(text) - {path} for unix:PATH, else {host, port, address}; throws on anything else */
function parseAddress(text) {
    if (typeof text !== 'string' || text === '') {
        throw new TypeError(`an address is HOST:PORT, [IPV6]:PORT or unix:PATH, not ${JSON.stringify(text)}`);
    }
    if (text.startsWith('unix:')) {
        return { path: text.slice(5), address: text };
    }
    const colon = text.lastIndexOf(':');
    const port = Number(text.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
        throw new TypeError(`an address is HOST:PORT, [IPV6]:PORT or unix:PATH, not ${JSON.stringify(text)}`);
    }
    const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    return { host, port, address: text };
}

/* listener(host, port) - the {host, port, address} object listeners are described with */
function listener(host, port) {
    return { host, port, address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
}

/* reachable(host) - the address a client on this machine connects to for a listener bound to host */
function reachable(host) {
    if (host === '0.0.0.0') {
        return '127.0.0.1';
    }
    return host === '::' ? '::1' : host;
}

module.exports = { DEFAULT_ADMIN, parseAddress, listener, reachable };
