'use strict';
/*
 * mailer.test.js - the application's mail code against a running smtpfault (node --test), through the
 * smtpfault package (clients/node).
 *
 * It starts nothing: SMTPFAULT_ADMIN (default 127.0.0.1:2580) is the server's admin socket. Each test makes
 * a scope with the fault it needs (a server of its own inside the running one: its own ports, profile and
 * captured mail), points the application at the scope's SMTP listener and checks what happened; closing the
 * scope leaves nothing behind.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { SmtpFault } = require('smtpfault');

const { createMailer } = require('./mailer');

let sf;

before(async () => {
    sf = await SmtpFault.connect(); // SMTPFAULT_ADMIN, else 127.0.0.1:2580
});

after(() => sf.close());

/* withFault(profile, check) - check(scope) in a scope of its own: a shipped profile's name, a profile, or none */
async function withFault(profile, check) {
    const scope = await sf.createScope(profile ? { profile } : {});
    try {
        await check(scope);
    } finally {
        await scope.close();
    }
}

/* mailer(scope) - the application configured for the scope's SMTP listener, trusting its test CA */
function mailer(scope, overrides = {}) {
    return createMailer({
        host: scope.smtp.host,
        port: scope.smtp.port,
        user: 'app@example.com',
        pass: 'app-password',
        ca: scope.ca, // the server's test CA, as the app would trust a real one
        retryDelayMs: 100,
        timeoutMs: 5000,
        ...overrides
    });
}

test('a welcome mail arrives', () => withFault(null, async scope => {
    const m = mailer(scope);
    try {
        const result = await m.sendWelcome('new.user@example.org');
        assert.equal(result.attempts, 1);
        const message = await scope.waitForMessage({ to: 'new.user@example.org', timeout: 5000 });
        assert.equal(message.subject, 'Welcome!');
        assert.ok(message.tls, 'sent over STARTTLS');
    } finally {
        m.close();
    }
}));

test('421 at the greeting is retried, then reported as temporary', () => withFault('server-421-try-again-later', async scope => {
    const m = mailer(scope, { attempts: 3 });
    try {
        await assert.rejects(m.sendWelcome('new.user@example.org'), err => {
            assert.equal(err.kind, 'temporary');
            assert.equal(err.attempts, 3);
            assert.equal(err.cause.responseCode, 421);
            return true;
        });
        const stats = await scope.stats();
        assert.equal(stats.faults.fired, 3, 'one refused connection per attempt');
    } finally {
        m.close();
    }
}));

// Not every error needs a shipped profile: this one fails the first MAIL FROM only.
const FIRST_TRY_451 = {
    name: 'first-try-451',
    rules: [{ when: { stage: 'mail', times: 1 }, do: { reply: '451 4.3.0 Try again later' } }]
};

test('a temporary failure that clears is retried until the mail goes through', () => withFault(FIRST_TRY_451, async scope => {
    const m = mailer(scope);
    try {
        const result = await m.sendWelcome('new.user@example.org');
        assert.equal(result.attempts, 2);
        await scope.waitForMessage({ to: 'new.user@example.org', timeout: 5000 });
    } finally {
        m.close();
    }
}));

test('a refused login (535) is shown to the user and not retried', () => withFault('auth-535-wrong-password', async scope => {
    const m = mailer(scope, { pass: 'not-the-password' });
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
}));

test('an unknown recipient (550) is a permanent failure', () => withFault('rcpt-550-user-unknown', async scope => {
    const m = mailer(scope);
    try {
        await assert.rejects(m.sendWelcome('no.such.user@example.org'), err => {
            assert.equal(err.kind, 'rejected');
            assert.equal(err.attempts, 1);
            assert.match(err.cause.response, /^550 5\.1\.1 /);
            return true;
        });
        assert.deepEqual(await scope.messages(), []);
    } finally {
        m.close();
    }
}));
