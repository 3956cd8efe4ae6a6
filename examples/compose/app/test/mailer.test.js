'use strict';
/*
 * mailer.test.js - the example app's own tests, run against the smtpfault service of the compose file.
 *
 * Each test puts a fault profile in force over the admin socket, sends mail through the app's module
 * (src/mailer.js), checks what the app did (retried? reported the error?), then asks smtpfault what it
 * received. The server is reset before each test, so the tests do not depend on each other.
 */
const { describe, it, before, beforeEach, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');

const { mailerFromEnv, MailError } = require('../src/mailer');
const { adminFromEnv } = require('./smtpfault');

const admin = adminFromEnv();
const CA_FILE = process.env.SMTP_CA_FILE || '/certs/ca.pem';
const SENDER = process.env.MAIL_FROM || 'app@example.test';

/* The profiles this suite uses, inline (docs/profiles.md describes the format). */
const PROFILES = {
    tryAgainTwice: {
        name: 'try-again-twice',
        description: 'The first two transactions get 421 at MAIL FROM, as a throttling provider answers',
        rules: [{ when: { stage: 'mail', times: 2 }, do: { reply: '421 4.7.0 Try again later, closing connection.' } }]
    },
    tryAgainAlways: {
        name: 'try-again-always',
        description: 'Every transaction gets 421 at MAIL FROM: the provider is down for longer than the retries',
        rules: [{ when: { stage: 'mail' }, do: { reply: '421 4.7.0 Try again later, closing connection.' } }]
    },
    badPassword: {
        name: 'bad-password',
        description: 'The login is refused, as Gmail refuses an account password when an app password is needed',
        rules: [{ when: { stage: 'auth' }, do: { reply: '535 5.7.8 Username and Password not accepted.' } }]
    },
    untrustedCertificate: {
        name: 'untrusted-certificate',
        description: 'The server presents a certificate from a CA the app does not trust',
        tls: { certificate: 'untrusted' }
    }
};

/* A fast mailer: the same retry logic, shorter waits. */
function mailer() {
    return mailerFromEnv(process.env, { retryDelayMs: 50 });
}

let sequence = 0;
function newMessage(tag) {
    sequence += 1;
    return {
        to: `${tag}-${sequence}@example.test`,
        subject: `smtpfault example: ${tag}`,
        text: `Sent by the example app's test "${tag}".\n`
    };
}

/* sendFails - send, expecting the app to report a failure: its MailError */
async function sendFails(message) {
    try {
        await mailer().send(message);
    } catch (err) {
        assert.ok(err instanceof MailError, `a MailError, not ${err}`);
        return err;
    }
    assert.fail('the message was sent');
}

async function receivedCount() {
    return (await admin.request('messages.list')).count;
}

describe('the app mailer, against smtpfault', { timeout: 120000 }, () => {
    before(async () => {
        await admin.waitReady(30000);
    });

    beforeEach(async () => {
        await admin.request('reset');
    });

    after(async () => {
        await admin.request('reset');
    });

    it('trusts the CA smtpfault wrote to the shared /certs volume', async () => {
        const { pem } = await admin.request('tls.ca');
        assert.equal(fs.readFileSync(CA_FILE, 'utf8').trim(), pem.trim());
    });

    it('sends over STARTTLS with AUTH, verifying the certificate against /certs/ca.pem', async () => {
        const msg = newMessage('plain');
        const result = await mailer().send(msg);
        assert.equal(result.attempts, 1);
        assert.match(result.response, /^250 /);

        const { message } = await admin.request('messages.wait', { to: msg.to, timeout: 10 });
        assert.equal(message.sender, SENDER);
        assert.deepEqual(message.recipients, [msg.to]);
        assert.equal(message.listener, 'submission');
        assert.match(message.tls.version, /^TLSv1\.[23]$/);
        assert.equal(message.auth, process.env.SMTP_USER);

        const full = await admin.request('messages.get', { message: message.id });
        const subject = full.headers.find(([name]) => name.toLowerCase() === 'subject');
        assert.deepEqual(subject, ['Subject', msg.subject]);
        assert.match(full.body, /Sent by the example app/);
    });

    it('retries on 421 and delivers once', async () => {
        await admin.request('profile.load', { profile: PROFILES.tryAgainTwice });
        const msg = newMessage('retry');
        const result = await mailer().send(msg);
        assert.equal(result.attempts, 3, 'two 421s, then success');

        await admin.request('messages.wait', { to: msg.to, timeout: 10 });
        assert.equal(await receivedCount(), 1, 'delivered exactly once');
    });

    it('gives up after its retries when 421 persists, and says the failure was temporary', async () => {
        await admin.request('profile.load', { profile: PROFILES.tryAgainAlways });
        const err = await sendFails(newMessage('down'));
        assert.equal(err.code, 421);
        assert.equal(err.temporary, true);
        assert.equal(err.attempts, 4, 'the first try and three retries');
        assert.match(err.message, /Try again later/);
        assert.equal(await receivedCount(), 0);
    });

    it('reports 535 to the caller at once, without retrying', async () => {
        await admin.request('profile.load', { profile: PROFILES.badPassword });
        const err = await sendFails(newMessage('auth'));
        assert.equal(err.code, 535);
        assert.equal(err.temporary, false);
        assert.equal(err.attempts, 1);
        assert.match(err.message, /^535 5\.7\.8 Username and Password not accepted/);
        assert.equal(await receivedCount(), 0);
    });

    it('refuses a certificate that does not chain to /certs/ca.pem', async () => {
        await admin.request('profile.load', { profile: PROFILES.untrustedCertificate });
        const err = await sendFails(newMessage('tls'));
        assert.equal(err.temporary, false);
        assert.equal(err.attempts, 1);
        assert.match(err.cause.message, /certificate/i);
        assert.equal(await receivedCount(), 0);
    });
});
