'use strict';
/*
 * report.test.js - client.report through the package (issue 18): report() on a scope and on the server, and
 * assertClient, the one call that checks what the code under test did after a 4xx and a 5xx, failing with
 * its timeline. The code under test is a small SMTP client on node:net, scripted here; delays are only
 * ever bounded below.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');

const { assertReport } = require('..');
const { IO_TIMEOUT_MS, TEST_TIMEOUT, serverPerFile } = require('./helpers');

const PROFILE = { rules: [
    { when: { stage: 'rcpt', rcpt: 'later@*', times: 3 }, do: { reply: '421 4.3.2 Busy, try again later' } },
    { when: { stage: 'rcpt', rcpt: 'nobody@*' }, do: { reply: '550 5.1.1 No such user' } }] };
const BACKOFF_MS = [100, 300, 700]; // each wait longer than the last by far more than a loaded machine's jitter
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
let sf;
serverPerFile(started => { sf = started; });

/* smtp(listener) - a connection: say(line) sends it (with CRLF unless raw) and resolves to the next reply's code */
async function smtp(listener) {
    const socket = net.connect(listener.port, listener.host);
    socket.setEncoding('latin1');
    socket.setTimeout(IO_TIMEOUT_MS, () => socket.destroy(new Error('no reply in time')));
    let buffered = '';
    const replies = [];
    let waiting = null;
    socket.on('data', chunk => {
        buffered += chunk;
        for (let m; (m = /^(\d{3}) .*\r\n/m.exec(buffered));) { // the last line of a reply
            buffered = buffered.slice(m.index + m[0].length);
            replies.push(Number(m[1]));
        }
        if (waiting && replies.length) {
            waiting();
        }
    });
    const reply = () => new Promise((resolve, reject) => {
        const done = () => { waiting = null; resolve(replies.shift()); };
        socket.once('error', reject);
        if (replies.length) {
            done();
        } else {
            waiting = done;
        }
    });
    assert.equal(await reply(), 220);
    return {
        say: (line, raw = false) => { socket.write(raw ? line : line + '\r\n'); return reply(); },
        close: () => socket.destroy()
    };
}

/* send(listener, rcpt) - one message on a new connection: 250, or the code that refused it (QUIT unless 421) */
async function send(listener, rcpt) {
    const c = await smtp(listener);
    try {
        assert.equal(await c.say('EHLO app.example.org'), 250);
        assert.equal(await c.say('MAIL FROM:<app@example.org>'), 250);
        let code = await c.say(`RCPT TO:<${rcpt}>`);
        if (code === 250) {
            assert.equal(await c.say('DATA'), 354);
            code = await c.say(`To: ${rcpt}\r\nSubject: story\r\n\r\nhello\r\n.`);
        }
        if (code !== 421) { // a 421 closes the session
            await c.say('QUIT');
        }
        return code;
    } finally {
        c.close();
    }
}

test('retried the 421 with backoff and gave up on the 550: one assertClient', { timeout: TEST_TIMEOUT }, async () => {
    const scope = await sf.createScope({ profile: PROFILE, listeners: ['smtp'] });
    try {
        const codes = [await send(scope.smtp, 'later@example.com')];
        for (const wait of BACKOFF_MS) {
            await sleep(wait);
            codes.push(await send(scope.smtp, 'later@example.com'));
        }
        codes.push(await send(scope.smtp, 'nobody@example.com'));
        assert.deepEqual(codes, [421, 421, 421, 250, 550]);

        await scope.assertClient({ retried4xx: { atLeast: 3, backoff: true }, retried5xx: false, gaveUpAfter5xx: true, violations: 0 });

        const report = await scope.report();
        assert.equal(report.scope, scope.id);
        const later = report.threads[0];
        assert.deepEqual(later.tries.map(t => t.code), [421, 421, 421, 250]);
        later.delays_ms.forEach((got, i) => assert.ok(got >= BACKOFF_MS[i] - 2, `${later.delays_ms}`));
        assert.throws(() => assertReport(report, { retried4xx: { atLeast: 4 } }),
            { name: 'AssertionError', message: /at least 4 times in one thread, the most was 3/ });
        await assert.rejects(scope.assertClient({ retried4xx: { atleast: 3 } }), { name: 'TypeError', message: /atleast/ });
    } finally {
        await scope.close();
    }
});

test('hammering fails the backoff assertion, with the delays', { timeout: TEST_TIMEOUT }, async () => {
    const scope = await sf.createScope({ profile: PROFILE, listeners: ['smtp'] });
    try {
        const codes = [];
        for (let i = 0; i < 4; i++) { // no wait at all between tries
            codes.push(await send(scope.smtp, 'later@example.com'));
        }
        assert.deepEqual(codes, [421, 421, 421, 250]);
        const err = await scope.assertClient({ retried4xx: { atLeast: 3, backoff: true } }).then(() => null, e => e);
        assert.equal(err?.name, 'AssertionError');
        assert.ok(err.message.startsWith(`scope ${scope.id}: expected growing delays after each 4xx (backoff)`), err.message);
        assert.ok(err.message.includes('app@example.org -> later@example.com: 421 at rcpt, after '), err.message);
        assert.ok(err.message.includes('backoff no') && err.message.includes('250 at data_end (delivered; retries 3'), err.message);
    } finally {
        await scope.close();
    }
});

test('a repeated 550 fails "no retry of a 5xx", naming it', { timeout: TEST_TIMEOUT }, async () => {
    const scope = await sf.createScope({ profile: PROFILE, listeners: ['smtp'] });
    try {
        assert.deepEqual([await send(scope.smtp, 'nobody@example.com'), await send(scope.smtp, 'nobody@example.com')], [550, 550]);
        const err = await scope.assertClient({ retried5xx: false, gaveUpAfter5xx: true }).then(() => null, e => e);
        assert.equal(err?.name, 'AssertionError');
        assert.ok(err.message.includes('expected no retry after a 5xx: "550 5.1.1 No such user" (at rcpt) tried again after '), err.message);
        assert.ok(err.message.includes('expected a 5xx given up on (tried once)'), err.message);
        assert.ok(err.message.includes('finding retried-5xx (violation, RFC 5321 4.2.1'), err.message);
    } finally {
        await scope.close();
    }
});

test('a bare LF fails "no violations", naming the finding', { timeout: TEST_TIMEOUT }, async () => {
    const scope = await sf.createScope({ profile: PROFILE, listeners: ['smtp'] });
    try {
        const c = await smtp(scope.smtp);
        assert.equal(await c.say('EHLO bare.example\n', true), 250); // LF alone: RFC 5321 2.3.8 wants CRLF
        assert.equal(await c.say('QUIT'), 221);
        c.close();
        const err = await scope.assertClient({ violations: 0 }).then(() => null, e => e);
        assert.equal(err?.name, 'AssertionError');
        assert.ok(err.message.includes('expected 0 violations, got 1: bare-lf (violation, RFC 5321 2.3.8'), err.message);
        assert.ok(err.message.includes('"EHLO bare.example"'), err.message);
    } finally {
        await scope.close();
    }
});

test('the server reports each client address', { timeout: TEST_TIMEOUT }, async () => {
    assert.equal(await send(sf.smtp, 'someone@example.com'), 250);
    assert.ok((await sf.report()).includes('127.0.0.1'));
    assert.equal((await sf.report('127.0.0.1')).client, '127.0.0.1');
    await sf.assertClient('127.0.0.1', { retried5xx: false });
    await assert.rejects(sf.assertClient('192.0.2.1', { violations: 0 }),
        { name: 'AssertionError', message: /smtpfault saw no try of this client/ });
});
