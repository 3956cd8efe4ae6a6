'use strict';
/*
 * pack.test.js - the archive `npm pack` makes, as a new user gets it: it holds the package and nothing else,
 * installs into an empty project (with Nodemailer), and the quick start of docs/clients.md (the same as the
 * package README's) passes there with node --test; the ES module entry points load.
 */
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { BIN } = require('./helpers');

const PACKAGE = path.resolve(__dirname, '..');
const DOCS = path.resolve(PACKAGE, '../../docs/clients.md');
const NPM_TIMEOUT_MS = 180000;
const PACK_TIMEOUT = 300000; // an npm install, then a server and two tests
let work;
let project;
let tarball;

/* firstJs(markdown, after) - the first ```js block after the line `after` */
function firstJs(markdown, afterLine) {
    const start = markdown.indexOf(`\n${afterLine}\n`);
    assert.ok(start >= 0, `no line ${afterLine}`);
    const m = /\n```js\n([\s\S]*?)\n```\n/.exec(markdown.slice(start));
    assert.ok(m, `no js block after ${afterLine}`);
    return m[1] + '\n';
}

function run(cmd, args, cwd, env = {}) {
    const { NODE_TEST_CONTEXT, ...outer } = process.env; // eslint-disable-line no-unused-vars
    // Without NODE_TEST_CONTEXT, a node --test run here reports as it would in a terminal, not to this runner.
    try {
        return execFileSync(cmd, args, { cwd, env: { ...outer, ...env }, encoding: 'utf8', timeout: NPM_TIMEOUT_MS,
            stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
        err.message += `\n${err.stdout}\n${err.stderr}`;
        throw err;
    }
}

before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'smtpfault-pack-'));
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], PACKAGE));
    tarball = path.join(work, packed[0].filename);
    project = path.join(work, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'new-project', private: true }));
    // Nodemailer from npm's cache when it holds it (run.sh's npm ci put it there), else from the registry.
    run('npm', ['install', '--save-dev', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball,
        `nodemailer@${require('../package.json').devDependencies.nodemailer}`], project);
});

after(() => {
    fs.rmSync(work, { recursive: true, force: true });
});

test('the archive holds the package, its types and its README, and no tests', { timeout: PACK_TIMEOUT }, () => {
    const packed = JSON.parse(run('npm', ['pack', '--dry-run', '--json'], PACKAGE))[0];
    const files = packed.files.map(f => f.path).sort();
    for (const want of ['index.js', 'index.mjs', 'index.d.ts', 'testcontainers.js', 'testcontainers.mjs',
        'testcontainers.d.ts', 'lib/smtpfault.js', 'README.md', 'package.json']) {
        assert.ok(files.includes(want), `${want} is packed: ${files}`);
    }
    assert.ok(!files.some(f => f.startsWith('test/') || f.includes('node_modules')), files.join(' '));
    const installed = JSON.parse(fs.readFileSync(path.join(project, 'node_modules/smtpfault/package.json'), 'utf8'));
    assert.equal(installed.dependencies, undefined, 'no dependencies');
});

test('the quick start of docs/clients.md passes in the new project', { timeout: PACK_TIMEOUT }, () => {
    const quick = firstJs(fs.readFileSync(DOCS, 'utf8'), '## Node');
    assert.equal(firstJs(fs.readFileSync(path.join(PACKAGE, 'README.md'), 'utf8'), '## Quick start'), quick,
        'the README shows the same quick start');
    fs.writeFileSync(path.join(project, 'quick-start.test.js'), quick);
    const out = run(process.execPath, ['--test', 'quick-start.test.js'], project, { SMTPFAULT_BIN: BIN });
    assert.match(out, /# pass 2\n/);
    assert.match(out, /# fail 0\n/);
});

test('ES modules: the package and smtpfault/testcontainers (which names what it lacks)', { timeout: PACK_TIMEOUT }, () => {
    fs.writeFileSync(path.join(project, 'esm.mjs'), `
import { SmtpFault, SmtpFaultError } from 'smtpfault';
const sf = await SmtpFault.start();
console.log('ping', await sf.ping(), typeof SmtpFaultError);
console.log('exit', await sf.close());
const { SmtpfaultContainer } = await import('smtpfault/testcontainers');
await new SmtpfaultContainer().start().catch(err => console.log(err.message));
`);
    const out = run(process.execPath, ['esm.mjs'], project, { SMTPFAULT_BIN: BIN });
    assert.match(out, /^ping true function\nexit 0\n/);
    assert.match(out, /smtpfault\/testcontainers needs the testcontainers package: npm install --save-dev testcontainers/);
});
