#!/usr/bin/env node
'use strict';
/*
 * webui-drive.js - drive smtpfault's web page in a real browser (the system's Chromium, headless, through
 * puppeteer-core) and send mail with Nodemailer meanwhile; print what the page showed as one JSON line.
 *
 * Input (first argument): {"url": "http://127.0.0.1:PORT/", "smtpPort": N, "chromium": "/usr/bin/chromium",
 *   "screenshots": "DIR", "token": "..." (answered to the page's prompt), "profile": "NAME" (the catalog
 *   entry to click), "steps": ["catalog", "fault", "message", "validate", "reset"] (the ones to run)}
 * Output: {"ok": true, "catalog": N, "fault": {...}, "message": {...}, ...} or {"ok": false, "error", "step"}.
 * Every wait is bounded; a screenshot is written at each step (DIR/NN-step.png).
 */
const fs = require('fs');
const path = require('path');
const puppeteer = require('puppeteer-core');
const nodemailer = require('nodemailer');

const WAIT_MS = 30000;

async function send(port, message) {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    try {
        const info = await transport.sendMail(message);
        return { ok: true, response: info.response };
    } catch (e) {
        return { ok: false, responseCode: e.responseCode, response: e.response };
    } finally {
        transport.close();
    }
}

async function text(page, selector) {
    return page.$eval(selector, (e) => e.textContent);
}

async function main() {
    const input = JSON.parse(process.argv[2]);
    const out = { ok: true };
    let step = 'launch';
    let shot = 0;
    const browser = await puppeteer.launch({
        executablePath: input.chromium,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1600,1000'],
        defaultViewport: { width: 1600, height: 1000 },
    });
    const screenshot = async (name) => {
        if (!input.screenshots) return;
        fs.mkdirSync(input.screenshots, { recursive: true });
        shot++;
        await page.screenshot({ path: path.join(input.screenshots, `${String(shot).padStart(2, '0')}-${name}.png`) });
    };
    const page = await browser.newPage();
    page.setDefaultTimeout(WAIT_MS);
    out.dialogs = 0;
    page.on('dialog', async (d) => {
        out.dialogs++;
        await d.accept(input.token || '');
    });
    out.consoleErrors = [];
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    try {
        const steps = new Set(input.steps);
        step = 'catalog';
        await page.goto(input.url);
        await page.waitForSelector('body[data-ready="true"]');
        out.catalog = await page.$$eval('#catalog li', (l) => l.length);
        out.description = await text(page, `#catalog li[data-name="${input.profile}"] .desc`);
        await screenshot('catalog');

        if (steps.has('fault')) {
            step = 'fault';
            await page.click(`#catalog li[data-name="${input.profile}"] button.load`);
            await page.waitForFunction((n) => document.getElementById('profile-name').textContent.startsWith(n), {},
                input.profile);
            out.profileShown = await text(page, '#profile-name');
            out.editor = JSON.parse(await page.$eval('#editor', (e) => e.value));
            out.send = await send(input.smtpPort, { from: 'app@example.org', to: 'alice@example.com',
                subject: 'refused', text: 'Hello.\n' });
            await page.waitForSelector('.session.has-fault .ev-fault');
            await page.waitForFunction(() => /closed/.test(document.querySelector('.session.has-fault .facts').textContent));
            out.fault = {
                text: await text(page, '.session.has-fault .ev-fault'),
                facts: await text(page, '.session.has-fault .facts'),
                lines: await page.$$eval('.session.has-fault li', (l) => l.map((e) => e.textContent)),
            };
            await page.waitForFunction(() => document.querySelector('[data-counter="faults fired"]').textContent === '1');
            out.faultsFired = await text(page, '[data-counter="faults fired"]');
            out.byRule = await page.$$eval('#by-rule tr', (l) => l.map((e) => e.textContent));
            await screenshot('session-fault');
        }

        if (steps.has('message')) {
            step = 'message';
            await page.click('#clear');
            await page.waitForFunction(() => document.getElementById('profile-name').textContent.startsWith('(none'));
            out.sendOk = await send(input.smtpPort, { from: 'app@example.org', to: 'bob@example.com',
                subject: 'Welcome Bob', text: 'Your code is 424242.\n',
                html: '<p>Your code is <b>424242</b>.</p><script>parent.document.title = "pwned";</script>' });
            await page.waitForSelector('#messages li');
            await page.click('#messages li');
            await page.waitForFunction(() => document.getElementById('tab-text').textContent.includes('424242'));
            out.message = {
                text: await text(page, '#tab-text'),
                headers: await text(page, '#tab-headers'),
                raw: await text(page, '#tab-raw'),
                download: await page.$eval('#download', (a) => [a.getAttribute('download'), a.href.slice(0, 5)]),
                html: await page.$eval('#tab-html', (f) => f.srcdoc),
                sandbox: await page.$eval('#tab-html', (f) => f.getAttribute('sandbox')),
            };
            await page.click('.tabs button[data-tab="html"]');
            await new Promise((r) => setTimeout(r, 300));
            out.message.title = await page.title(); // the part's script must not have run
            await screenshot('message');
        }

        if (steps.has('validate')) {
            step = 'validate';
            await page.$eval('#editor', (e) => {
                e.value = JSON.stringify({ rules: [{ when: { stage: 'rpct' }, do: { reply: '550 no' } }] });
            });
            await page.click('#validate');
            await page.waitForSelector('#errors li[data-path]');
            out.errors = await page.$$eval('#errors li', (l) => l.map((e) => [e.dataset.path || null, e.textContent]));
            await screenshot('validate');
        }

        if (steps.has('reset')) {
            step = 'reset';
            await page.click('#reset');
            await page.waitForFunction(() => document.querySelectorAll('#messages li').length === 0 &&
                document.querySelector('[data-counter="faults fired"]').textContent === '0' &&
                document.getElementById('message').hidden);
            out.afterReset = await page.$$eval('#counters dd', (l) => l.map((e) => e.textContent));
            await screenshot('reset');
        }
    } catch (e) {
        out.ok = false;
        out.step = step;
        out.error = String(e && e.stack || e);
        await screenshot(`failed-${step}`).catch(() => {});
    } finally {
        await browser.close();
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack || e), step: 'driver' }) + '\n');
});
