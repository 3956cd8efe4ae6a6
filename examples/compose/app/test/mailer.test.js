'use strict';
/*
 * mailer.test.js - the example app's own tests, run against the smtpfault service of the compose file.
 *
 * Each test makes a scope with the smtpfault package (clients/node): a server of its own inside the running
 * one, with its own submission port, its own fault profile and its own captured mail, ended with the test.
 * It points the app's mail module (src/mailer.js) at the scope's port, checks what the app did (retried?
 * reported the error?), then what the scope received. The tests do not depend on each other.
 */
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { SmtpFault } = require('smtpfault');

const { mailerFromEnv, MailError } = require('../src/mailer');

const CA_FILE = process.env.SMTP_CA_FILE || '/certs/ca.pem';
const SENDER = process.env.MAIL_FROM || 'app@example.test';
const READY_MS = 30000; // podman-compose 1.0.3 starts the app without waiting for smtpfault's health check

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

/* connectWhenReady - the package's connection to SMTPFAULT_ADMIN, once the server answers. A scope's listener
 * answers with the host it binds (0.0.0.0 in the image): the app reaches it by the service name, SMTP_HOST. */
async function connectWhenReady() {
    const deadline = Date.now() + READY_MS;
    for (;;) {
        try {
            return await SmtpFault.connect({ mapAddress: ({ port }) => ({ host: process.env.SMTP_HOST, port }) });
        } catch (err) {
            if (Date.now() > deadline) {
                throw new Error(`smtpfault did not answer in ${READY_MS} ms: ${err.message}`);
            }
            await new Promise(resolve => setTimeout(resolve, 250));
        }
    }
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

/* sendFails - send through mailer, expecting the app to report a failure: its MailError */
async function sendFails(mailer, message) {
    try {
        await mailer.send(message);
    } catch (err) {
        assert.ok(err instanceof MailError, `a MailError, not ${err}`);
        return err;
    }
    assert.fail('the message was sent');
}

describe('the app mailer, against smtpfault', { timeout: 120000 }, () => {
    let sf;

    before(async () => {
        sf = await connectWhenReady();
    });

    after(() => sf.close());

    /* inScope(profile, check) - check(scope, mailer) in a scope of its own (its submission listener only), with
     * the app's mailer pointed at it (the same retry logic, shorter waits); the scope ends after it */
    async function inScope(profile, check) {
        const scope = await sf.createScope({ profile, listeners: ['submission'] });
        const { host, port } = scope.submission;
        try {
            await check(scope, mailerFromEnv({ ...process.env, SMTP_HOST: host, SMTP_PORT: String(port) },
                { retryDelayMs: 50 }));
        } finally {
            await scope.close();
        }
    }

    it('trusts the CA smtpfault wrote to the shared /certs volume', () => {
        assert.equal(fs.readFileSync(CA_FILE, 'utf8').trim(), sf.ca.trim());
    });

    it('sends over STARTTLS with AUTH, verifying the certificate against /certs/ca.pem', () =>
        inScope(undefined, async (scope, mailer) => {
            const msg = newMessage('plain');
            const result = await mailer.send(msg);
            assert.equal(result.attempts, 1);
            assert.match(result.response, /^250 /);

            const message = await scope.waitForMessage({ to: msg.to });
            assert.equal(message.sender, SENDER);
            assert.deepEqual(message.recipients, [msg.to]);
            assert.equal(message.listener, 'submission');
            assert.match(message.tls.version, /^TLSv1\.[23]$/);
            assert.equal(message.auth, process.env.SMTP_USER);
            assert.equal(message.subject, msg.subject);
            assert.match(message.body, /Sent by the example app/);
        }));

    it('retries on 421 and delivers once', () => inScope(PROFILES.tryAgainTwice, async (scope, mailer) => {
        const msg = newMessage('retry');
        const result = await mailer.send(msg);
        assert.equal(result.attempts, 3, 'two 421s, then success');

        await scope.waitForMessage({ to: msg.to });
        assert.equal((await scope.messages()).length, 1, 'delivered exactly once');
    }));

    it('gives up after its retries when 421 persists, and says the failure was temporary', () =>
        inScope(PROFILES.tryAgainAlways, async (scope, mailer) => {
            const err = await sendFails(mailer, newMessage('down'));
            assert.equal(err.code, 421);
            assert.equal(err.temporary, true);
            assert.equal(err.attempts, 4, 'the first try and three retries');
            assert.match(err.message, /Try again later/);
            assert.deepEqual(await scope.messages(), []);
        }));

    it('reports 535 to the caller at once, without retrying', () =>
        inScope(PROFILES.badPassword, async (scope, mailer) => {
            const err = await sendFails(mailer, newMessage('auth'));
            assert.equal(err.code, 535);
            assert.equal(err.temporary, false);
            assert.equal(err.attempts, 1);
            assert.match(err.message, /^535 5\.7\.8 Username and Password not accepted/);
            assert.deepEqual(await scope.messages(), []);
        }));

    it('refuses a certificate that does not chain to /certs/ca.pem', () =>
        inScope(PROFILES.untrustedCertificate, async (scope, mailer) => {
            const err = await sendFails(mailer, newMessage('tls'));
            assert.equal(err.temporary, false);
            assert.equal(err.attempts, 1);
            assert.match(err.cause.message, /certificate/i);
            assert.deepEqual(await scope.messages(), []);
        }));
});
