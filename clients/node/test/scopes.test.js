'use strict';
/*
 * scopes.test.js - scopes against the real binary: each with its own ports, profile and mail, several at
 * once; every command on a scope; how scopes end; Nodemailer verifying scope.ca.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { SmtpFault, SmtpFaultError } = require('..');
const { TEST_TIMEOUT, serverPerFile, send, refuses, eventually } = require('./helpers');

const FIRST_RCPT_451 = { name: 'first-rcpt-451', rules: [{ when: { stage: 'rcpt', times: 1 }, do: { reply: '451 4.3.0 Try again later' } }] };
let sf;
serverPerFile(started => { sf = started; });

test('a scope: its own listeners, the server CA, its profile', { timeout: TEST_TIMEOUT }, async () => {
    const scope = await sf.createScope({ profile: 'rcpt-550-user-unknown' });
    try {
        assert.match(scope.id, /^s\d+$/);
        assert.equal(scope.keep, false);
        for (const name of ['smtp', 'submission', 'smtps']) {
            assert.equal(scope[name].host, '127.0.0.1');
            assert.notEqual(scope[name].port, sf[name].port);
        }
        assert.equal(scope.ca, sf.ca);
        assert.equal((await scope.getProfile()).name, 'rcpt-550-user-unknown');
        assert.equal((await sf.getProfile()).rules, 0, 'the server keeps its own profile');
        await assert.rejects(send(scope.smtp, scope.ca, 'nobody@example.com'), err => err.responseCode === 550);
        await send(sf.smtp, sf.ca, 'nobody@example.com'); // the server's own listener has no fault
        assert.equal((await scope.stats()).faults.fired, 1);
    } finally {
        await scope.close();
    }
});

test('scopes in parallel: each test its own fault and its own mail', { timeout: TEST_TIMEOUT }, async () => {
    const recipients = ['p0@example.com', 'p1@example.com', 'p2@example.com', 'p3@example.com'];
    await Promise.all(recipients.map(async (to, i) => {
        const scope = await sf.createScope({ profile: i % 2 ? FIRST_RCPT_451 : { rules: [] } });
        try {
            if (i % 2) {
                await assert.rejects(send(scope.submission, scope.ca, to), err => err.responseCode === 451);
            }
            await send(scope.submission, scope.ca, to, `for ${to}`);
            const msg = await scope.waitForMessage({ to, timeout: 10000 });
            assert.equal(msg.subject, `for ${to}`);
            assert.deepEqual((await scope.messages()).map(m => m.recipients), [[to]], 'only its own mail');
            assert.equal((await scope.stats()).faults.fired, i % 2);
        } finally {
            await scope.close();
        }
    }));
    const own = (await sf.messages()).flatMap(m => m.recipients);
    assert.ok(!own.some(r => recipients.includes(r)), 'the server saw none of the scopes\' mail');
});

test('every command on a scope', { timeout: TEST_TIMEOUT }, async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sf-')), 'first-rcpt.json');
    fs.writeFileSync(file, JSON.stringify(FIRST_RCPT_451));
    const scope = await sf.createScope({ profile: file });
    try {
        assert.equal((await scope.getProfile()).name, 'first-rcpt-451');
        assert.equal((await scope.validateProfile({ rules: [] })).valid, true);
        assert.equal((await scope.loadProfile('rcpt-550-user-unknown')).name, 'rcpt-550-user-unknown');
        await scope.clearProfile();
        assert.equal((await scope.getProfile()).rules, 0);

        const events = scope.events();
        await events.ready;
        await send(scope.smtps, scope.ca, 'alice@example.com', 'one', { secure: true });
        await send(scope.submission, scope.ca, 'bob@example.com', 'two');
        const seen = [];
        for await (const ev of events) {
            seen.push(ev);
            if (ev.event === 'close' && seen.filter(e => e.event === 'close').length === 2) {
                break;
            }
        }
        assert.ok(seen.every(ev => ev.scope === scope.id), 'a scope\'s events carry its id');

        const all = await scope.messages();
        assert.deepEqual(all.map(m => m.listener), ['smtps', 'submission']);
        assert.deepEqual((await scope.messages({ to: 'bob@*' })).map(m => m.id), [all[1].id]);
        const bob = await scope.message(all[1].id);
        assert.equal(bob.subject, 'two');
        assert.equal((await scope.waitForMessage({ to: 'alice@*' })).id, all[0].id);

        const { live, recent } = await scope.sessions();
        assert.deepEqual(live, []);
        assert.equal(recent.length, 2);
        assert.equal((await scope.session(recent[0].id)).messages, 1);
        assert.ok(!(await sf.sessions()).recent.some(s => s.id === recent[0].id), 'not among the server\'s');

        await scope.deleteMessage(all[0].id);
        assert.equal(await scope.clearMessages(), 1);
        await send(scope.smtp, scope.ca, 'carol@example.com');
        const reset = await scope.reset();
        assert.equal(reset.name, 'first-rcpt-451', 'reset goes back to the start profile');
        assert.equal(reset.cleared, 1);
        await assert.rejects(send(scope.smtp, scope.ca, 'dave@example.com'), err => err.responseCode === 451,
            'with fresh counters');
    } finally {
        await scope.close();
    }
});

test('listeners: a subset', { timeout: TEST_TIMEOUT }, async () => {
    const scope = await sf.createScope({ name: 'rcpt-550-user-unknown', listeners: ['smtp'] });
    try {
        assert.ok(scope.smtp);
        assert.equal(scope.submission, null);
        assert.equal(scope.smtps, null);
    } finally {
        await scope.close();
    }
});

test('close(): the ports refuse, a pending wait and an event stream end, the id is not_found', { timeout: TEST_TIMEOUT }, async () => {
    const scope = await sf.createScope({});
    const waited = assert.rejects(scope.waitForMessage({ to: 'never@example.com', timeout: 30000 }),
        err => err instanceof SmtpFaultError && err.code === 'not_found'); // "scope s1 ended", or gone already
    const events = scope.events();
    await events.ready;
    await scope.close();
    await waited;
    const seen = [];
    for await (const ev of events) {
        seen.push(ev.event);
    }
    assert.deepEqual(seen, ['scope_end']);
    assert.ok(await refuses(scope.smtp));
    await assert.rejects(scope.stats(), err => err.code === 'not_found' && /no scope has the id/.test(err.message));
    await scope.close(); // a second close is a no-op
});

test('closing the SmtpFault ends its scopes, except those kept', { timeout: TEST_TIMEOUT }, async () => {
    const other = await SmtpFault.connect({ admin: sf.admin.address });
    const gone = await other.createScope({});
    const kept = await other.createScope({ keep: true });
    assert.equal(kept.keep, true);
    await other.close();
    await eventually(async () => !(await sf.scopes()).some(s => s.scope === gone.id), `${gone.id} ended`);
    assert.ok(await refuses(gone.smtp));
    assert.ok((await sf.scopes()).some(s => s.scope === kept.id), 'the kept scope runs on');
    await send(kept.smtp, sf.ca, 'kept@example.com');
    const same = await sf.scope(kept.id); // the kept scope, from another SmtpFault
    assert.deepEqual(same.smtp, kept.smtp);
    assert.deepEqual((await same.waitForMessage({ to: 'kept@example.com' })).recipients, ['kept@example.com']);
    await same.close();
    assert.ok(await refuses(kept.smtp));
});

test('errors of scope.create: invalid_profile with its errors, not_found, bad_argument', { timeout: TEST_TIMEOUT }, async () => {
    await assert.rejects(sf.createScope({ profile: { rules: [{ when: { stage: 'rpct' } }] }, source: 'broken.json' }), err => {
        assert.equal(err.code, 'invalid_profile');
        assert.equal(err.command, 'scope.create');
        assert.match(err.errors[0], /^broken\.json: rules\[0\]\.when\.stage: unknown stage "rpct"/);
        assert.equal(err.errors.length, 2);
        return true;
    });
    await assert.rejects(sf.createScope({ profile: 'no-such-profile' }), err => err.code === 'not_found');
    await assert.rejects(sf.createScope({ listeners: ['pop3'] }), err => err.code === 'bad_argument');
});
