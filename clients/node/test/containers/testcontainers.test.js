'use strict';
/*
 * testcontainers.test.js - smtpfault/testcontainers for real: the image built from the Dockerfile, run
 * through the testcontainers package on podman's Docker-compatible API (run.sh sets DOCKER_HOST and
 * SMTPFAULT_IMAGE), driven from the host through the published ports.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const nodemailer = require('nodemailer');

const { SmtpfaultContainer } = require('smtpfault/testcontainers');
const { SmtpFault } = require('smtpfault');

const IO_TIMEOUT_MS = 30000;
let sf;

async function send(listener, ca, to) {
    const t = nodemailer.createTransport({
        host: listener.host, port: listener.port, secure: false, requireTLS: true,
        auth: { user: 'app@example.com', pass: 'secret' }, tls: { ca: [ca], rejectUnauthorized: true },
        connectionTimeout: IO_TIMEOUT_MS, greetingTimeout: IO_TIMEOUT_MS, socketTimeout: IO_TIMEOUT_MS
    });
    try {
        return await t.sendMail({ from: 'app@example.com', to, subject: 'from the host', text: 'hi\n' });
    } finally {
        t.close();
    }
}

before(async () => {
    sf = await new SmtpfaultContainer(process.env.SMTPFAULT_IMAGE).start();
});

after(async () => {
    if (sf) {
        const admin = sf.admin;
        await sf.close();
        const refused = await new Promise(resolve => {
            const s = net.connect(admin.port, admin.host);
            s.once('connect', () => { s.destroy(); resolve(false); });
            s.once('error', () => resolve(true));
        });
        assert.ok(refused, 'close() stopped the container: its admin port is gone');
    }
});

test('a connected SmtpFault: the admin socket with its token, the listeners at their published ports', async () => {
    assert.equal(await sf.ping(), true);
    assert.match(sf.ca, /^-----BEGIN CERTIFICATE-----/);
    for (const name of ['smtp', 'submission', 'smtps']) {
        assert.equal(sf[name].host, sf.admin.host);
        assert.equal(sf[name].port, sf.container.getMappedPort({ smtp: 2525, submission: 2587, smtps: 2465 }[name]));
    }
    await assert.rejects(SmtpFault.connect({ admin: sf.admin.address, token: 'not-the-token' }),
        err => err.code === 'unauthorized');
});

test('Nodemailer from the host, verifying the container CA; the message captured', async () => {
    await send(sf.submission, sf.ca, 'host-user@example.com');
    const msg = await sf.waitForMessage({ to: 'host-user@example.com', timeout: IO_TIMEOUT_MS });
    assert.equal(msg.subject, 'from the host');
    assert.equal(msg.listener, 'submission');
});

test('a shipped profile fails the next mail; reset clears it', async () => {
    await sf.loadProfile('rcpt-550-user-unknown');
    await assert.rejects(send(sf.smtp, sf.ca, 'nobody@example.com'), err => err.responseCode === 550);
    await sf.reset();
});

test('scopes in the container: their ports published and mapped, each with its own fault and mail', async () => {
    const failing = await sf.createScope({ profile: 'rcpt-550-user-unknown' });
    const clean = await sf.createScope();
    try {
        assert.notEqual(failing.submission.port, clean.submission.port);
        assert.equal(clean.submission.host, sf.admin.host);
        await assert.rejects(send(failing.submission, failing.ca, 'refused@example.com'), err => err.responseCode === 550);
        await send(clean.submission, clean.ca, 'scoped@example.com');
        assert.equal((await clean.waitForMessage({ to: 'scoped@example.com', timeout: IO_TIMEOUT_MS })).listener, 'submission');
        assert.deepEqual(await failing.messages(), []);
        assert.ok(!(await sf.messages()).some(m => m.recipients.includes('scoped@example.com')), 'not the server\'s');
    } finally {
        await failing.close();
        await clean.close();
    }
});

test('ESM: import { SmtpfaultContainer } from "smtpfault/testcontainers"', async () => {
    const esm = await import('smtpfault/testcontainers');
    assert.equal(esm.SmtpfaultContainer, SmtpfaultContainer);
});
