'use strict';
/*
 * process.js - the smtpfault binary as a child process: every listener on a free loopback port, the bound
 * addresses read from --ports-file, stopped with SIGTERM.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { SmtpFaultError } = require('./errors');

const START_TIMEOUT_MS = 30000;
const STOP_TIMEOUT_MS = 15000; // past the server's 5 s drain: then SIGKILL
const POLL_MS = 20;
const LOG_TAIL_BYTES = 64 * 1024; // what start errors quote of the server's stderr
const EPHEMERAL = ['--smtp', '127.0.0.1:0', '--submission', '127.0.0.1:0', '--smtps', '127.0.0.1:0',
    '--admin', '127.0.0.1:0'];
// Options the server would read from the environment: a started server is configured by its arguments only.
// SMTPFAULT_PROFILES (where profiles are looked up by name) is kept.
const KEPT_ENV = new Set(['SMTPFAULT_PROFILES']);

const running = new Set();
let exitHookInstalled = false;

/* killOnExit(child) - a server the program forgot to close does not outlive it */
function killOnExit(child) {
    running.add(child);
    child.once('exit', () => running.delete(child));
    if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.once('exit', () => running.forEach(c => c.kill('SIGKILL')));
    }
}

function serverEnv(extra) {
    const env = {};
    for (const [key, value] of Object.entries(process.env)) {
        if (!key.startsWith('SMTPFAULT_') || KEPT_ENV.has(key)) {
            env[key] = value;
        }
    }
    return Object.assign(env, extra);
}

/*
 * spawnServer({bin, args, env, token, startTimeoutMs, log}) - the started child and its ports file's
 * content, once every listener is bound. bin: SMTPFAULT_BIN, else smtpfault on PATH. log: 'pipe' (default:
 * kept for error messages) or 'inherit' (the server's transcript on this process's stderr).
 */
async function spawnServer(options = {}) {
    const bin = options.bin || process.env.SMTPFAULT_BIN || 'smtpfault';
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smtpfault-'));
    const portsFile = path.join(dir, 'ports.json');
    const args = [...EPHEMERAL, '--ports-file', portsFile, ...(options.args || [])];
    if (options.token !== undefined) {
        args.push('--admin-token', options.token);
    }
    const child = spawn(bin, args, {
        env: serverEnv(options.env),
        stdio: ['ignore', 'ignore', options.log === 'inherit' ? 'inherit' : 'pipe']
    });
    let tail = '';
    if (child.stderr) {
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', chunk => { tail = (tail + chunk).slice(-LOG_TAIL_BYTES); });
    }
    let exited = null;
    let spawnError = null;
    child.once('error', err => { spawnError = err; });
    child.once('exit', (code, signal) => { exited = signal || code; });
    killOnExit(child);

    const deadline = Date.now() + (options.startTimeoutMs || START_TIMEOUT_MS);
    try {
        for (;;) {
            if (spawnError) {
                throw new SmtpFaultError('start_failed', `cannot run ${bin}: ${spawnError.message} (set SMTPFAULT_BIN)`);
            }
            if (exited !== null) {
                throw new SmtpFaultError('start_failed', `${bin} exited (${exited}) before it listened: ${tail.trim()}`);
            }
            let text = null;
            try {
                text = fs.readFileSync(portsFile, 'utf8'); // written atomically: complete when present
            } catch (err) {
                if (err.code !== 'ENOENT') {
                    throw err;
                }
            }
            if (text !== null) {
                return { child, ports: JSON.parse(text), dir, log: () => tail };
            }
            if (Date.now() > deadline) {
                throw new SmtpFaultError('start_failed', `${bin} did not listen within ${options.startTimeoutMs || START_TIMEOUT_MS} ms: ${tail.trim()}`);
            }
            await new Promise(resolve => setTimeout(resolve, POLL_MS));
        }
    } catch (err) {
        child.kill('SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
    }
}

/* stopServer(child, dir) - SIGTERM, then SIGKILL past STOP_TIMEOUT_MS; the exit code or signal */
async function stopServer(child, dir) {
    if (child.exitCode === null && child.signalCode === null) {
        const exit = new Promise(resolve => child.once('exit', (code, signal) => resolve(signal || code)));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exit;
        clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    return child.signalCode || child.exitCode;
}

module.exports = { spawnServer, stopServer };
