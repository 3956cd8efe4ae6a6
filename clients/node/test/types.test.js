'use strict';
/*
 * types.test.js - index.d.ts as TypeScript projects use it: test/types/check.ts (CommonJS) and check.mts
 * (ES module) compile under --strict with tsc, and a use that contradicts the declarations does not.
 */
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PACKAGE = path.resolve(__dirname, '..');
const TSC = require.resolve('typescript/bin/tsc');
const { TEST_TIMEOUT } = require('./helpers');

function tsc(args) {
    return spawnSync(process.execPath, [TSC, ...args], { encoding: 'utf8', timeout: 120000 });
}

test('the declarations compile as CommonJS and ES module TypeScript uses them', { timeout: TEST_TIMEOUT }, () => {
    const r = tsc(['-p', path.join(__dirname, 'types', 'tsconfig.json')]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('a use the declarations forbid does not compile', { timeout: TEST_TIMEOUT }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smtpfault-types-'));
    try {
        const file = path.join(dir, 'bad.mts');
        fs.writeFileSync(file, `import { SmtpFault } from ${JSON.stringify(path.join(PACKAGE, 'index.js'))};
const sf = await SmtpFault.start();
const scope = await sf.createScope({ profile: 'x' });
const port: string = scope.smtp!.port;
await scope.waitForMessage({ timeout: '10s' });
`);
        const r = tsc(['--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2022', file]);
        assert.notEqual(r.status, 0);
        assert.match(r.stdout, /bad\.mts\(4,7\): error TS2322: Type 'number' is not assignable to type 'string'/);
        assert.match(r.stdout, /bad\.mts\(5,/);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
