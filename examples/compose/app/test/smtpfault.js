'use strict';
/*
 * smtpfault.js - a client for smtpfault's admin socket: newline-delimited JSON over TCP, one request and
 * one response per connection. No dependency: this is all a test suite needs to drive the server.
 *
 *   const admin = adminFromEnv();                      // SMTPFAULT_ADMIN_ADDR=smtpfault:2580
 *   await admin.request('profile.load', { profile: { rules: [...] } });
 *   const { message } = await admin.request('messages.wait', { to: 'alice@*', timeout: 10 });
 */
const net = require('node:net');

class AdminError extends Error {
    constructor(cmd, error) {
        super(`${cmd}: ${error.message} (${error.code})`);
        this.code = error.code;
    }
}

function createAdmin({ host, port, token }) {
    /* request - send {cmd, ...args}; resolves to the response when ok, rejects with an AdminError if not */
    function request(cmd, args = {}) {
        const waitS = typeof args.timeout === 'number' ? args.timeout : 0;
        return new Promise((resolve, reject) => {
            const socket = net.connect({ host, port });
            let buffer = '';
            socket.setEncoding('utf8');
            socket.setTimeout((waitS + 10) * 1000, () => socket.destroy(new Error(`${cmd}: no answer`)));
            socket.on('connect', () => socket.write(JSON.stringify({ id: 1, cmd, token, ...args }) + '\n'));
            socket.on('data', chunk => {
                buffer += chunk;
                const end = buffer.indexOf('\n');
                if (end < 0) {
                    return;
                }
                socket.end();
                let response;
                try {
                    response = JSON.parse(buffer.slice(0, end));
                } catch (err) {
                    reject(err);
                    return;
                }
                if (response.ok) {
                    resolve(response);
                } else {
                    reject(new AdminError(cmd, response.error));
                }
            });
            socket.on('error', reject);
            socket.on('close', () => reject(new Error(`${cmd}: the admin socket closed without answering`)));
        });
    }

    /* waitReady - ping until the server answers, for at most timeoutMs */
    async function waitReady(timeoutMs = 30000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            try {
                return await request('ping');
            } catch (err) {
                if (Date.now() > deadline) {
                    throw new Error(`smtpfault at ${host}:${port} did not answer in ${timeoutMs} ms: ${err.message}`);
                }
                await new Promise(resolve => setTimeout(resolve, 250));
            }
        }
    }

    return { request, waitReady };
}

/* adminFromEnv - SMTPFAULT_ADMIN_ADDR (HOST:PORT, default smtpfault:2580) and SMTPFAULT_ADMIN_TOKEN */
function adminFromEnv(env = process.env) {
    const addr = env.SMTPFAULT_ADMIN_ADDR || 'smtpfault:2580';
    const colon = addr.lastIndexOf(':');
    return createAdmin({
        host: addr.slice(0, colon),
        port: Number(addr.slice(colon + 1)),
        token: env.SMTPFAULT_ADMIN_TOKEN || undefined
    });
}

module.exports = { createAdmin, adminFromEnv, AdminError };
