'use strict';
/*
 * parallel.test.js - tests with conflicting faults, run at once against one server: each in its own scope.
 *
 * The server is started once for the whole run (make run, or a compose service); SMTPFAULT_ADMIN says where
 * its admin socket is (default 127.0.0.1:2580). The suite runs eight tests at a time (its concurrency), each
 * with a scope of its own made by the smtpfault package: every test sees only its own fault and its own mail.
 */
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const nodemailer = require('nodemailer');
const { SmtpFault } = require('smtpfault');

const WORKERS = 8;

/* send(scope, subject) - one message to user@example.test through the scope's SMTP listener */
async function send(scope, subject) {
    const transport = nodemailer.createTransport({ host: scope.smtp.host, port: scope.smtp.port, tls: { ca: scope.ca } });
    try {
        return await transport.sendMail({ from: 'app@example.test', to: 'user@example.test', subject, text: 'Hello.' });
    } finally {
        transport.close();
    }
}

describe('conflicting faults, eight tests at a time', { concurrency: WORKERS }, () => {
    let sf;
    before(async () => { sf = await SmtpFault.connect(); });
    after(() => sf.close());

    /* inScope(profile, check) - check(scope) in a scope of its own (its SMTP listener only), ended after it */
    async function inScope(profile, check) {
        const scope = await sf.createScope({ profile, listeners: ['smtp'] });
        try {
            await check(scope);
        } finally {
            await scope.close();
        }
    }

    for (let n = 0; n < WORKERS; n++) {
        it(`user unknown ${n}`, () => inScope('rcpt-550-user-unknown', async scope => {
            await assert.rejects(send(scope, `unknown ${n}`), { responseCode: 550 });
            assert.deepEqual(await scope.messages(), []);
        }));
        it(`try again later ${n}`, () => inScope('server-421-try-again-later', async scope => {
            await assert.rejects(send(scope, `busy ${n}`), { responseCode: 421 });
            assert.deepEqual((await scope.stats()).faults.by_stage, { greeting: 1 });
        }));
        it(`delivered ${n}`, () => inScope(undefined, async scope => {
            await send(scope, `hello ${n}`);
            assert.deepEqual((await scope.waitForMessage({ to: 'user@example.test' })).recipients, ['user@example.test']);
            const stats = await scope.stats();
            assert.ok(stats.messages.accepted === 1 && stats.faults.fired === 0, JSON.stringify(stats));
        }));
    }
});
