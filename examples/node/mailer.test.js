'use strict';
/*
 * mailer.test.js - the application's mail code against a running smtpfault (node --test).
 *
 * It starts nothing: SMTPFAULT_SMTP (default 127.0.0.1:2525) is the server's SMTP listener and
 * SMTPFAULT_ADMIN (default 127.0.0.1:2580) its admin socket. Each test puts a shipped profile in force by
 * name, checks what the application does, and resets the server afterwards.
 */
const { test, afterEach, before } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');

const { createMailer } = require('./mailer');

function hostPort(value, fallback) {
    const text = value || fallback;
    const i = text.lastIndexOf(':');
    return { host: text.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(text.slice(i + 1)) };
}

const SMTP = hostPort(process.env.SMTPFAULT_SMTP, '127.0.0.1:2525');
const ADMIN = hostPort(process.env.SMTPFAULT_ADMIN, '127.0.0.1:2580');

/* admin(request) - one request to the admin socket (newline-delimited JSON); its response */
function admin(request) {
    return new Promise((resolve, reject) => {
        const socket = net.connect(ADMIN.port, ADMIN.host);
        let data = '';
        socket.setEncoding('utf8');
        socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
        socket.on('data', chunk => {
            data += chunk;
            if (data.includes('\n')) {
                socket.end();
                const response = JSON.parse(data.slice(0, data.indexOf('\n')));
                return response.ok ? resolve(response) : reject(new Error(JSON.stringify(response.error)));
            }
        });
        socket.on('error', reject);
    });
}

const loadProfile = name => admin({ cmd: 'profile.load', name });

let ca;

before(async () => {
    ca = (await admin({ cmd: 'tls.ca' })).pem; // trust the server's test CA, as the app would trust a real one
});

afterEach(() => admin({ cmd: 'reset' }));

function mailer(overrides = {}) {
    return createMailer({
        host: SMTP.host,
        port: SMTP.port,
        user: 'app@example.com',
        pass: 'app-password',
        ca,
        retryDelayMs: 100,
        timeoutMs: 5000,
        ...overrides
    });
}

test('a welcome mail arrives', async () => {
    const m = mailer();
    try {
        const result = await m.sendWelcome('new.user@example.org');
        assert.equal(result.attempts, 1);
        const { message } = await admin({ cmd: 'messages.wait', to: 'new.user@example.org', timeout: 5 });
        assert.deepEqual(message.recipients, ['new.user@example.org']);
    } finally {
        m.close();
    }
});

test('421 at the greeting is retried, then reported as temporary', async () => {
    await loadProfile('server-421-try-again-later');
    const m = mailer({ attempts: 3 });
    try {
        await assert.rejects(m.sendWelcome('new.user@example.org'), err => {
            assert.equal(err.kind, 'temporary');
            assert.equal(err.attempts, 3);
            assert.equal(err.cause.responseCode, 421);
            return true;
        });
        const stats = await admin({ cmd: 'stats' });
        assert.equal(stats.faults.fired, 3, 'one refused connection per attempt');
    } finally {
        m.close();
    }
});

test('a temporary failure that clears is retried until the mail goes through', async () => {
    // Not every error needs a shipped profile: this one fails the first MAIL FROM only.
    await admin({
        cmd: 'profile.load',
        profile: {
            name: 'first-try-451',
            rules: [{ when: { stage: 'mail', times: 1 }, do: { reply: '451 4.3.0 Try again later' } }]
        }
    });
    const m = mailer();
    try {
        const result = await m.sendWelcome('new.user@example.org');
        assert.equal(result.attempts, 2);
        await admin({ cmd: 'messages.wait', to: 'new.user@example.org', timeout: 5 });
    } finally {
        m.close();
    }
});

test('a refused login (535) is shown to the user and not retried', async () => {
    await loadProfile('auth-535-wrong-password');
    const m = mailer({ pass: 'not-the-password' });
    try {
        await assert.rejects(m.sendWelcome('new.user@example.org'), err => {
            assert.equal(err.kind, 'auth');
            assert.equal(err.attempts, 1);
            assert.match(err.userMessage, /check the SMTP user name and password/);
            assert.equal(err.cause.responseCode, 535);
            return true;
        });
    } finally {
        m.close();
    }
});

test('an unknown recipient (550) is a permanent failure', async () => {
    await loadProfile('rcpt-550-user-unknown');
    const m = mailer();
    try {
        await assert.rejects(m.sendWelcome('no.such.user@example.org'), err => {
            assert.equal(err.kind, 'rejected');
            assert.equal(err.attempts, 1);
            assert.match(err.cause.response, /^550 5\.1\.1 /);
            return true;
        });
        const { messages } = await admin({ cmd: 'messages.list' });
        assert.equal(messages.length, 0);
    } finally {
        m.close();
    }
});
