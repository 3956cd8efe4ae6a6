'use strict';
/*
 * mailer.js - the example application's mail module: what an app's own code around Nodemailer looks like.
 *
 * Its contract, which test/mailer.test.js checks against smtpfault:
 * - it always sends over STARTTLS (requireTLS) and verifies the server's certificate against the CA it is
 *   given, for the host name it connects to;
 * - a temporary failure (a 4xx reply such as "421 4.7.0 Try again later", or a connection that failed)
 *   is retried, up to `retries` more times with a doubling delay;
 * - a permanent failure (a 5xx reply such as "535 5.7.8 Authentication failed", or a certificate that does
 *   not verify) is not retried, and reaches the caller as a MailError with the reply's code.
 */
const fs = require('node:fs');
const nodemailer = require('nodemailer');

/* A failure as the caller sees it: the SMTP reply code (or Nodemailer's error code), and how many tries. */
class MailError extends Error {
    constructor(err, attempts) {
        super(err.response || err.message);
        this.name = 'MailError';
        this.code = err.responseCode || err.code || 'EUNKNOWN';
        this.temporary = isTemporary(err);
        this.attempts = attempts;
        this.cause = err;
    }
}

/* Connection errors worth another try; TLS and certificate errors (ETLS, ESOCKET with a reason) are not. */
const TEMPORARY_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ECONNRESET', 'ECONNREFUSED']);

function isTemporary(err) {
    if (err.responseCode) {
        return err.responseCode >= 400 && err.responseCode < 500;
    }
    return TEMPORARY_CODES.has(err.code);
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

/*
 * createMailer - options: host, port, user, pass, ca (PEM text), retries (default 3), retryDelayMs
 * (default 200, doubled after each try), from (the default sender). Returns { send(message) }: resolves
 * to { messageId, response, attempts } or rejects with a MailError.
 */
function createMailer(options) {
    const { host, port, user, pass, ca, retries = 3, retryDelayMs = 200, from } = options;
    const transportOptions = {
        host,
        port,
        secure: false, // submission: plain TCP first...
        requireTLS: true, // ...then STARTTLS, or fail
        tls: { ca, servername: host, minVersion: 'TLSv1.2' }, // verification stays on (the default)
        auth: user ? { user, pass } : undefined,
        connectionTimeout: 5000,
        greetingTimeout: 5000,
        socketTimeout: 10000
    };

    async function send(message) {
        for (let attempt = 1; ; attempt++) {
            const transport = nodemailer.createTransport(transportOptions);
            try {
                const info = await transport.sendMail({ from, ...message });
                return { messageId: info.messageId, response: info.response, attempts: attempt };
            } catch (err) {
                if (!isTemporary(err) || attempt > retries) {
                    throw new MailError(err, attempt);
                }
                await sleep(retryDelayMs * 2 ** (attempt - 1));
            } finally {
                transport.close();
            }
        }
    }

    return { send };
}

/* mailerFromEnv - the mailer the app runs with: SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASS, SMTP_CA_FILE */
function mailerFromEnv(env = process.env, overrides = {}) {
    return createMailer({
        host: env.SMTP_HOST || 'localhost',
        port: Number(env.SMTP_PORT || 587),
        user: env.SMTP_USER,
        pass: env.SMTP_PASS,
        ca: env.SMTP_CA_FILE ? fs.readFileSync(env.SMTP_CA_FILE, 'utf8') : undefined,
        from: env.MAIL_FROM || 'app@example.test',
        ...overrides
    });
}

module.exports = { createMailer, mailerFromEnv, MailError };
