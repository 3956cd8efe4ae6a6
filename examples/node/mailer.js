'use strict';
/*
 * mailer.js - the part of an application that sends mail, as an application would write it.
 *
 * sendWelcome(to) sends one message with Nodemailer. Temporary failures (a 4xx reply such as 421 or 451, or
 * a connection that fails or times out) are retried a few times with a pause; a refused login (535) is not
 * retried but reported to the user as a configuration problem; other permanent refusals (5xx) are reported
 * as they are. Every failure comes out as a MailError with a kind the rest of the application can act on.
 */
const nodemailer = require('nodemailer');

class MailError extends Error {
    constructor(kind, userMessage, cause, attempts) {
        super(`${userMessage} (${cause.message})`);
        this.name = 'MailError';
        this.kind = kind; // 'auth', 'temporary' or 'rejected'
        this.userMessage = userMessage;
        this.cause = cause;
        this.attempts = attempts;
    }
}

const NETWORK_CODES = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EDNS']);

function classify(err) {
    const code = err.responseCode;
    if (code === 535 || code === 534 || err.code === 'EAUTH') {
        return 'auth';
    }
    if ((code >= 400 && code < 500) || (!code && NETWORK_CODES.has(err.code))) {
        return 'temporary';
    }
    return 'rejected';
}

const USER_MESSAGES = {
    auth: 'The mail server refused our login: check the SMTP user name and password.',
    temporary: 'The mail server is not accepting mail right now; the message will be sent later.',
    rejected: 'The mail server refused the message.'
};

/*
 * createMailer(config) - config: {host, port, user, pass, ca (PEM, to verify STARTTLS), from,
 * attempts (default 3), retryDelayMs (default 1000), timeoutMs (default 10000)}
 */
function createMailer(config) {
    const attempts = config.attempts || 3;
    const transport = nodemailer.createTransport({
        host: config.host,
        port: config.port,
        secure: false,
        requireTLS: Boolean(config.ca),
        tls: config.ca ? { ca: [config.ca] } : undefined,
        auth: config.user ? { user: config.user, pass: config.pass } : undefined,
        connectionTimeout: config.timeoutMs || 10000,
        greetingTimeout: config.timeoutMs || 10000,
        socketTimeout: config.timeoutMs || 10000
    });

    async function sendWelcome(to) {
        const message = {
            from: config.from || 'app@example.com',
            to,
            subject: 'Welcome!',
            text: 'Thanks for signing up.'
        };
        for (let attempt = 1; ; attempt++) {
            try {
                const info = await transport.sendMail(message);
                return { messageId: info.messageId, response: info.response, attempts: attempt };
            } catch (err) {
                const kind = classify(err);
                if (kind !== 'temporary' || attempt >= attempts) {
                    throw new MailError(kind, USER_MESSAGES[kind], err, attempt);
                }
                await new Promise(resolve => setTimeout(resolve, config.retryDelayMs ?? 1000));
            }
        }
    }

    return { sendWelcome, close: () => transport.close() };
}

module.exports = { createMailer, MailError };
