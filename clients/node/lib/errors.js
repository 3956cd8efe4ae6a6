'use strict';
/* errors.js - SmtpFaultError: every failure of the package, with the admin error code it carries. */

class SmtpFaultError extends Error {
    /*
     * code: the admin socket's error code (not_found, bad_argument, invalid_profile, timeout, unauthorized,
     * ...), or one of the package's own: disconnected (the admin connection closed), start_failed (the
     * binary did not start). errors: for invalid_profile, every error of the profile (JSON paths first).
     */
    constructor(code, message, { errors = [], response = null, command = null } = {}) {
        super(command ? `${command}: ${message} (${code})` : `${message} (${code})`);
        this.name = 'SmtpFaultError';
        this.code = code;
        this.errors = errors;
        this.response = response;
        this.command = command;
    }
}

/* fromResponse(command, response) - the error a failed response ({ok: false, error: {code, message}}) stands for */
function fromResponse(command, response) {
    const error = response.error || {};
    return new SmtpFaultError(error.code || 'internal', error.message || 'the server answered an error', {
        errors: Array.isArray(response.errors) ? response.errors : [],
        response,
        command
    });
}

module.exports = { SmtpFaultError, fromResponse };
