#!/usr/bin/env node
// bench/node/peer.js - Nodemailer's smtp-server set up as smtpfault is in the TLS benchmark (bench/tls_bench.py).
//
// Usage: node peer.js --certs DIR --ports-file PATH [--stock-greeting]
//
// Two listeners on 127.0.0.1, ports picked by the system, like smtpfault's --smtp and --smtps:
//   smtp   plain SMTP offering STARTTLS and AUTH, neither required (smtpfault's smtp listener);
//   smtps  implicit TLS, AUTH required (smtpfault's smtps listener).
// Both present DIR/server.pem with DIR/server.key (the ECDSA P-256 certificate written by
// `smtpfault certs DIR`), accept any credentials (smtpfault without --user), accept every message and
// discard its content as it streams in. No logging and no reverse DNS look-up (smtpfault does neither).
// TLS session resumption is Node's default: session tickets (TLS 1.3) and the session cache.
// TCP_NODELAY is set (noDelay), as smtpfault sets it on every connection: without it, Nagle's algorithm
// and the client's delayed ACKs cost up to 40 ms per round trip.
//
// smtp-server waits 100 ms before its greeting to catch clients that talk too early
// (SMTPConnection.init, not configurable). With one session and a connection per message that delay, not
// the server's CPU, sets the pace (about 9 connections/s), and with 50 sessions it caps the rate at 500/s.
// To measure what the server can do, the peer greets at once (the same code with no timer); with
// --stock-greeting it keeps the 100 ms.
//
// A third listener, control, answers every connection with one JSON line of counters and closes it:
// {"accepted": messages acknowledged, "connections": sessions opened, "secured": TLS handshakes done,
//  "resumed": resumed handshakes, "auth": logins}. The listeners' addresses are written to PATH as JSON
// ({"smtp": {"host", "port"}, "smtps": ..., "control": ...}) once all three listen. SIGTERM stops it.
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { SMTPServer } = require('smtp-server');
const { SMTPConnection } = require('smtp-server/lib/smtp-connection.js');

function arg(name) {
    const i = process.argv.indexOf(name);
    if (i < 0 || i + 1 >= process.argv.length) {
        console.error(`peer.js: ${name} is required`);
        process.exit(2);
    }
    return process.argv[i + 1];
}

if (!process.argv.includes('--stock-greeting')) {
    // smtp-server 3.21.6's init() without its setTimeout(..., 100); maxClients is not used here.
    SMTPConnection.prototype.init = function init() {
        this._setListeners(() => this.connectionReady());
    };
}

const certs = arg('--certs');
const portsFile = arg('--ports-file');
const key = fs.readFileSync(path.join(certs, 'server.key'));
const cert = fs.readFileSync(path.join(certs, 'server.pem'));
const counters = { accepted: 0, connections: 0, secured: 0, resumed: 0, auth: 0 };

function options(secure) {
    return {
        secure,
        noDelay: true, // TCP_NODELAY, as smtpfault sets on every connection (net.createServer's option)
        key,
        cert,
        authOptional: !secure, // smtp: AUTH offered, not required; smtps: required, as smtpfault's
        disableReverseLookup: true,
        logger: false,
        banner: 'smtp-server',
        onConnect(session, callback) {
            counters.connections++;
            callback();
        },
        onSecure(socket, session, callback) {
            counters.secured++;
            if (typeof socket.isSessionReused === 'function' && socket.isSessionReused()) counters.resumed++;
            callback();
        },
        onAuth(auth, session, callback) {
            counters.auth++;
            callback(null, { user: auth.username });
        },
        onData(stream, session, callback) {
            stream.on('data', () => {});
            stream.on('end', () => {
                counters.accepted++;
                callback(null, 'Ok: queued');
            });
        },
    };
}

function listen(server) {
    return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server.server ? server.server.address() : server.address()));
    });
}

async function main() {
    const smtp = new SMTPServer(options(false));
    const smtps = new SMTPServer(options(true));
    for (const s of [smtp, smtps]) s.on('error', () => {}); // a client's reset is not the server's failure
    const control = net.createServer(sock => {
        sock.on('error', () => {});
        sock.end(JSON.stringify(counters) + '\n');
    });
    const [a, b, c] = [await listen(smtp), await listen(smtps), await listen(control)];
    const entry = addr => ({ host: addr.address, port: addr.port });
    const tmp = portsFile + '.tmp';
    fs.writeFileSync(tmp, JSON.stringify({ smtp: entry(a), smtps: entry(b), control: entry(c) }) + '\n');
    fs.renameSync(tmp, portsFile);
    process.on('SIGTERM', () => {
        control.close();
        smtp.close(() => smtps.close(() => process.exit(0)));
        setTimeout(() => process.exit(0), 2000).unref();
    });
}

main().catch(err => {
    console.error(`peer.js: ${err.stack || err}`);
    process.exit(1);
});
