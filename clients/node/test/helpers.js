'use strict';
/* helpers.js - what the package's tests share: the binary under test, a mail sender, polling with a deadline. */
const path = require('node:path');
const net = require('node:net');
const { before, after } = require('node:test');
const nodemailer = require('nodemailer');
const { SmtpFault } = require('..');

// The binary under test: SMTPFAULT_BIN (CTest sets it), else the build tree's.
const BIN = process.env.SMTPFAULT_BIN || path.resolve(__dirname, '../../../build/smtpfault');
const IO_TIMEOUT_MS = 20000; // generous: an ASan build on a loaded two-core machine
const TEST_TIMEOUT = 60000; // per test: a hang fails the test instead of stalling the run

/* transport(listener, ca, options) - Nodemailer on a listener, verifying the server against ca */
function transport(listener, ca, { secure = false, auth = { user: 'app@example.com', pass: 'secret' } } = {}) {
    return nodemailer.createTransport({
        host: listener.host,
        port: listener.port,
        secure,
        requireTLS: !secure,
        auth,
        tls: { ca: [ca], rejectUnauthorized: true },
        connectionTimeout: IO_TIMEOUT_MS,
        greetingTimeout: IO_TIMEOUT_MS,
        socketTimeout: IO_TIMEOUT_MS
    });
}

/* send(listener, ca, to, subject) - one message through Nodemailer; its info */
async function send(listener, ca, to, subject = 'Welcome!', options = {}) {
    const t = transport(listener, ca, options);
    try {
        return await t.sendMail({ from: 'app@example.com', to, subject, text: 'Thanks for signing up.\n' });
    } finally {
        t.close();
    }
}

/* refuses(listener) - true when a TCP connection to the listener is refused */
function refuses(listener) {
    return new Promise(resolve => {
        const socket = net.connect(listener.port, listener.host);
        socket.once('connect', () => { socket.destroy(); resolve(false); });
        socket.once('error', err => resolve(err.code === 'ECONNREFUSED'));
    });
}

/* eventually(check, what) - poll check() until it returns true, within IO_TIMEOUT_MS */
async function eventually(check, what) {
    const deadline = Date.now() + IO_TIMEOUT_MS;
    while (!(await check())) {
        if (Date.now() > deadline) {
            throw new Error(`not within ${IO_TIMEOUT_MS} ms: ${what}`);
        }
        await new Promise(resolve => setTimeout(resolve, 50));
    }
}

/* serverPerFile(set) - a server started before the file's tests (handed to set) and stopped after them */
function serverPerFile(set) {
    let sf;
    before(async () => {
        sf = await SmtpFault.start({ bin: BIN });
        set(sf);
    });
    after(async () => {
        await sf?.close();
    });
}

module.exports = { BIN, IO_TIMEOUT_MS, TEST_TIMEOUT, serverPerFile, send, transport, refuses, eventually };
