'use strict';
/*
 * server.test.js - SmtpFault against the real binary: start and connect, every command on the server's own
 * listeners, each error type, events, and Nodemailer verifying the server with sf.ca.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { SmtpFault, SmtpFaultError } = require('..');
const { BIN, TEST_TIMEOUT, serverPerFile, send, refuses, eventually } = require('./helpers');

let sf;
serverPerFile(started => { sf = started; });

test('start: every listener on a loopback port, the CA, a live process that close() stops', { timeout: TEST_TIMEOUT }, async () => {
    const own = await SmtpFault.start({ bin: BIN });
    for (const name of ['smtp', 'submission', 'smtps']) {
        assert.equal(own[name].host, '127.0.0.1');
        assert.ok(own[name].port > 0);
        assert.equal(own[name].address, `127.0.0.1:${own[name].port}`);
    }
    assert.match(own.ca, /^-----BEGIN CERTIFICATE-----\n/);
    assert.equal(await own.ping(), true);
    assert.equal((await own.version()).version, '0.1.0');
    const smtp = own.smtp;
    assert.equal(await own.close(), 0, 'the server exits 0 on SIGTERM');
    assert.ok(await refuses(smtp), 'the listener is gone');
});

test('start: a binary that cannot run, or a bad option, is start_failed with the reason', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(SmtpFault.start({ bin: '/nonexistent/smtpfault' }),
        err => err instanceof SmtpFaultError && err.code === 'start_failed' && /ENOENT/.test(err.message));
    await assert.rejects(SmtpFault.start({ bin: BIN, args: ['--max-recipients', '5'] }),
        err => err.code === 'start_failed' && /--max-recipients/.test(err.message));
});

test('connect: a server that runs, by address; its listeners from stats', { timeout: TEST_TIMEOUT }, async () => {
    const other = await SmtpFault.connect({ admin: sf.admin.address });
    try {
        assert.deepEqual(other.smtp, sf.smtp);
        assert.deepEqual(other.smtps, sf.smtps);
        assert.equal(other.ca, sf.ca);
        assert.equal(await other.ping(), true);
    } finally {
        await other.close();
    }
    assert.equal(await sf.ping(), true, 'closing a connected SmtpFault leaves the server running');
});

test('connect: SMTPFAULT_ADMIN, a unix socket, and the token (unauthorized without it)', { timeout: TEST_TIMEOUT }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sf-'));
    const sock = path.join(dir, 'admin.sock');
    const guarded = await SmtpFault.start({ bin: BIN, token: 's3cret', args: ['--admin', '127.0.0.1:0', '--admin', `unix:${sock}`] });
    const saved = process.env.SMTPFAULT_ADMIN;
    try {
        await assert.rejects(SmtpFault.connect({ admin: guarded.admin.address, token: 'wrong' }),
            err => err instanceof SmtpFaultError && err.code === 'unauthorized');
        process.env.SMTPFAULT_ADMIN = `unix:${sock}`;
        const viaUnix = await SmtpFault.connect({ token: 's3cret' });
        assert.equal(viaUnix.admin, `unix:${sock}`);
        assert.deepEqual(viaUnix.smtp, guarded.smtp);
        await viaUnix.close();
    } finally {
        if (saved === undefined) {
            delete process.env.SMTPFAULT_ADMIN;
        } else {
            process.env.SMTPFAULT_ADMIN = saved;
        }
        await guarded.close();
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test('connect: nobody listening is disconnected', { timeout: TEST_TIMEOUT }, async () => {
    const gone = await SmtpFault.start({ bin: BIN });
    const admin = gone.admin.address;
    await gone.close();
    await assert.rejects(SmtpFault.connect({ admin }), err => err.code === 'disconnected');
});

test('profiles: inline, by name, from a file; validate, get, clear', { timeout: TEST_TIMEOUT }, async () => {
    const inline = { name: 'first-rcpt', rules: [{ when: { stage: 'rcpt', times: 1 }, do: { reply: '451 4.3.0 Try again later' } }] };
    assert.deepEqual(await sf.loadProfile(inline),
        { name: 'first-rcpt', rules: 1, stages: ['rcpt'], listeners: ['smtp', 'submission', 'smtps'], settings: [] });
    assert.deepEqual((await sf.getProfile()).profile, inline);
    assert.equal((await sf.loadProfile('rcpt-550-user-unknown')).name, 'rcpt-550-user-unknown');
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sf-')), 'mine.json');
    fs.writeFileSync(file, JSON.stringify({ name: 'from-file', rules: [] }));
    assert.equal((await sf.loadProfile(file)).name, 'from-file');
    assert.equal((await sf.validateProfile(inline)).valid, true);
    assert.equal((await sf.getProfile()).name, 'from-file', 'validate loads nothing');
    await sf.clearProfile();
    assert.equal((await sf.getProfile()).rules, 0);
});

test('errors: invalid_profile with every JSON-path error, from the server and from a file here', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(sf.loadProfile({ rules: [{ when: { stage: 'rpct' } }] }, { source: 'broken.json' }), err => {
        assert.ok(err instanceof SmtpFaultError);
        assert.equal(err.code, 'invalid_profile');
        assert.equal(err.command, 'profile.load');
        assert.equal(err.errors.length, 2);
        assert.match(err.errors[0], /^broken\.json: rules\[0\]\.when\.stage: unknown stage "rpct"/);
        assert.match(err.errors[1], /^broken\.json: rules\[0\]\.do: missing/);
        return true;
    });
    await assert.rejects(sf.loadProfile('/nonexistent/profile.json'),
        err => err.code === 'invalid_profile' && /cannot read/.test(err.errors[0]));
});

test('errors: not_found, bad_argument, timeout', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(sf.loadProfile('no-such-profile'), err => err.code === 'not_found');
    await assert.rejects(sf.message('6B0495A0B27300000001'), err => err.code === 'not_found');
    await assert.rejects(sf.session(999999), err => err.code === 'not_found');
    await assert.rejects(sf.messages({ limit: 0 }), err => err.code === 'bad_argument' && /limit/.test(err.message));
    await assert.rejects(sf.waitForMessage({ timeout: 601000 }), err => err.code === 'bad_argument');
    const started = Date.now();
    await assert.rejects(sf.waitForMessage({ to: 'nobody@example.com', timeout: 300 }),
        err => err instanceof SmtpFaultError && err.code === 'timeout');
    assert.ok(Date.now() - started >= 250, 'the server waited the timeout given in ms');
    assert.equal(await sf.ping(), true, 'the connection stays usable after errors');
});

test('messages: Nodemailer verifying sf.ca on every listener; wait, list, get, delete, clear', { timeout: TEST_TIMEOUT }, async () => {
    await sf.reset();
    await send(sf.submission, sf.ca, 'alice@example.com', 'on submission');
    await send(sf.smtps, sf.ca, 'bob@example.com', 'on smtps', { secure: true });
    await send(sf.smtp, sf.ca, 'carol@example.com', 'on smtp');

    const alice = await sf.waitForMessage({ to: 'alice@example.com', timeout: 10000 });
    assert.equal(alice.subject, 'on submission');
    assert.equal(alice.listener, 'submission');
    assert.equal(alice.auth, 'app@example.com');
    assert.ok(alice.tls, 'STARTTLS was used');
    assert.equal(alice.body, 'Thanks for signing up.\r\n');
    assert.equal((await sf.waitForMessage({ to: 'bob@*' })).listener, 'smtps');

    const all = await sf.messages();
    assert.deepEqual(all.map(m => m.recipients[0]), ['alice@example.com', 'bob@example.com', 'carol@example.com']);
    assert.deepEqual((await sf.messages({ to: 'carol@*' })).map(m => m.id), [all[2].id]);
    assert.deepEqual((await sf.messages({ subject: 'ON SMTPS' })).map(m => m.id), [all[1].id]);
    assert.equal((await sf.waitForMessage({ subject: '*submission', timeout: 1000 })).id, all[0].id);
    assert.deepEqual((await sf.messages({ since: all[0].id, limit: 1 })).map(m => m.id), [all[1].id]);
    const raw = await sf.message(all[2].id, { raw: true });
    assert.match(Buffer.from(raw.raw_base64, 'base64').toString(), /Subject: on smtp/);
    await sf.deleteMessage(all[0].id);
    assert.equal((await sf.messages()).length, 2);
    assert.equal(await sf.clearMessages(), 2);
    assert.deepEqual(await sf.messages(), []);
});

test('waitForMessage waits on its own connection: other commands go on meanwhile', { timeout: TEST_TIMEOUT }, async () => {
    await sf.reset();
    const waiting = sf.waitForMessage({ to: 'later@example.com', timeout: 20000 });
    assert.equal(await sf.ping(), true, 'answered while the wait is pending');
    await send(sf.smtp, sf.ca, 'later@example.com');
    assert.deepEqual((await waiting).recipients, ['later@example.com']);
});

test('faults: a 550 profile refuses Nodemailer; stats count it; reset goes back', { timeout: TEST_TIMEOUT }, async () => {
    await sf.reset();
    await sf.loadProfile('rcpt-550-user-unknown');
    await assert.rejects(send(sf.smtp, sf.ca, 'nobody@example.com'), err => err.responseCode === 550);
    const stats = await sf.stats();
    assert.equal(stats.faults.profile, 'rcpt-550-user-unknown');
    assert.equal(stats.faults.fired, 1);
    assert.equal((await sf.reset()).rules, 0);
    assert.equal((await sf.stats()).faults.fired, 0);
});

test('sessions and events: a session as it happens, then in sessions() and session(id)', { timeout: TEST_TIMEOUT }, async () => {
    const events = sf.events();
    await events.ready;
    await send(sf.smtp, sf.ca, 'dave@example.com');
    const seen = [];
    for await (const ev of events) {
        seen.push(ev);
        if (ev.event === 'close') {
            break; // ends the stream's connection
        }
    }
    assert.equal(seen[0].event, 'connect');
    assert.ok(seen.some(ev => ev.event === 'message'));
    const id = seen[0].session;
    assert.ok(seen.every(ev => ev.session === id));

    await eventually(async () => (await sf.sessions()).recent.some(s => s.id === id), 'the session is recent');
    const session = await sf.session(id);
    assert.equal(session.live, false);
    assert.equal(session.messages, 1);
    assert.ok(session.transcript.some(line => line.event === 'message'));
});

test('ESM: import { SmtpFault } from "smtpfault"', { timeout: TEST_TIMEOUT }, async () => {
    const esm = await import('smtpfault');
    assert.equal(esm.SmtpFault, SmtpFault);
    assert.equal(esm.SmtpFaultError, SmtpFaultError);
});

test('connect: a port that is not an admin socket (SMTP) is disconnected, not a hang', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(SmtpFault.connect({ admin: sf.smtp.address }), err => err.code === 'disconnected');
});
