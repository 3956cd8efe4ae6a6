#!/usr/bin/env node
'use strict';
/*
 * nodemailer-send.js - send mail through nodemailer's SMTP transport and print what nodemailer reports.
 *
 * Input: one JSON object, as the first argument or on stdin:
 *   {
 *     "host": "127.0.0.1", "port": 2525,
 *     "transport": {...},            extra createTransport() options (pool, maxMessages, ...)
 *     "message": {...}               one message: nodemailer message options
 *     "messages": [{...}, ...]       or several, sent concurrently (use "transport": {"pool": true})
 *   }
 * Message options are passed to sendMail() as they are, except that an attachment may carry
 * "contentBase64" (decoded into a Buffer) and "raw" may be given as "rawBase64".
 *
 * Output: one JSON line on stdout. For "message":
 *   {"ok": true, "messageId", "response", "accepted", "rejected", "envelope", "log"}
 *   {"ok": false, "code", "responseCode", "response", "command", "message", "originalCode", "reason",
 *    "library", "log"}
 * where "code" is nodemailer's (ESOCKET, ETIMEDOUT, EAUTH, ...), "originalCode" the code of the error
 * nodemailer wrapped (Node's or OpenSSL's: CERT_HAS_EXPIRED, ERR_SSL_WRONG_VERSION_NUMBER, ...) and
 * "reason"/"library" OpenSSL's, when the error came from it (null otherwise).
 * For "messages": {"results": [one of the above, in input order], "log"}.
 * "log" is nodemailer's own transcript (its logger, with debug on): {"level", "tnx", "text"} entries.
 * The exit code is 0 whenever a JSON result was printed, 2 for bad input.
 */
const nodemailer = require('nodemailer');

function readInput() {
    if (process.argv.length > 2) {
        return Promise.resolve(process.argv[2]);
    }
    return new Promise((resolve, reject) => {
        const chunks = [];
        process.stdin.on('data', chunk => chunks.push(chunk));
        process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        process.stdin.on('error', reject);
    });
}

/* a bunyan-style logger that keeps every entry, so the caller sees the client's own transcript */
function captureLogger(entries) {
    const logger = {};
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
        logger[level] = (data, message, ...args) => {
            const text = require('node:util').format(message, ...args);
            entries.push({ level, tnx: (data && data.tnx) || '', text });
        };
    }
    return logger;
}

function prepareMessage(options) {
    const message = Object.assign({}, options);
    if (Array.isArray(message.attachments)) {
        message.attachments = message.attachments.map(a => {
            const copy = Object.assign({}, a);
            if (typeof copy.contentBase64 === 'string') {
                copy.content = Buffer.from(copy.contentBase64, 'base64');
                delete copy.contentBase64;
            }
            return copy;
        });
    }
    if (typeof message.rawBase64 === 'string') {
        message.raw = Buffer.from(message.rawBase64, 'base64');
        delete message.rawBase64;
    }
    return message;
}

function success(info) {
    return {
        ok: true,
        messageId: info.messageId,
        response: info.response,
        accepted: info.accepted,
        rejected: info.rejected,
        envelope: info.envelope
    };
}

function failure(err) {
    return {
        ok: false,
        code: err.code === undefined ? null : err.code,
        responseCode: err.responseCode === undefined ? null : err.responseCode,
        response: err.response === undefined ? null : err.response,
        command: err.command === undefined ? null : err.command,
        message: err.message,
        originalCode: err.originalCode === undefined ? null : err.originalCode,
        reason: err.reason === undefined ? null : err.reason,
        library: err.library === undefined ? null : err.library
    };
}

async function main() {
    let input;
    try {
        input = JSON.parse(await readInput());
    } catch (err) {
        process.stderr.write('nodemailer-send: input is not JSON: ' + err.message + '\n');
        return 2;
    }
    if (!input.host || !input.port || (!input.message && !Array.isArray(input.messages))) {
        process.stderr.write('nodemailer-send: need host, port and message or messages\n');
        return 2;
    }
    const log = [];
    const transport = nodemailer.createTransport(
        Object.assign(
            {
                host: input.host,
                port: input.port,
                secure: false,
                ignoreTLS: true, // no STARTTLS yet
                connectionTimeout: 10000,
                greetingTimeout: 10000,
                socketTimeout: 20000,
                logger: captureLogger(log),
                debug: true
            },
            input.transport || {}
        )
    );
    let output;
    try {
        if (input.message) {
            try {
                output = success(await transport.sendMail(prepareMessage(input.message)));
            } catch (err) {
                output = failure(err);
            }
        } else {
            const results = await Promise.all(
                input.messages.map(m =>
                    transport.sendMail(prepareMessage(m)).then(success, failure)
                )
            );
            output = { results };
        }
    } finally {
        transport.close();
    }
    output.log = log;
    process.stdout.write(JSON.stringify(output) + '\n');
    return 0;
}

main().then(
    code => {
        process.exitCode = code;
    },
    err => {
        process.stderr.write('nodemailer-send: ' + (err && err.stack ? err.stack : err) + '\n');
        process.exitCode = 1;
    }
);
