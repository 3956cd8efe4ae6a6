'use strict';
/*
 * profile.js - the profile arguments of profile.load, profile.validate and scope.create from what a user
 * gives: an object (sent inline), a file on this machine (read here and sent inline, so it works against a
 * server in a container), or the name of a shipped profile.
 */
const fs = require('node:fs');
const { SmtpFaultError } = require('./errors');

/* isFile(text) - a string names a file when it has a path separator or ends with .json */
const isFile = text => text.includes('/') || text.includes('\\') || text.endsWith('.json');

/* profileArgs(profile, source) - {profile, source} or {name}; a file that cannot be read or parsed is invalid_profile */
function profileArgs(profile, source) {
    if (profile !== null && typeof profile === 'object' && !Array.isArray(profile)) {
        return { profile, source };
    }
    if (typeof profile !== 'string' || profile === '') {
        throw new TypeError('a profile is an object, a file name or the name of a shipped profile');
    }
    if (!isFile(profile)) {
        return { name: profile };
    }
    let text;
    try {
        text = fs.readFileSync(profile, 'utf8');
    } catch (err) {
        const message = `${profile}: cannot read: ${err.message}`;
        throw new SmtpFaultError('invalid_profile', message, { errors: [message] });
    }
    try {
        return { profile: JSON.parse(text), source: source || profile };
    } catch (err) {
        const message = `${profile}: invalid JSON: ${err.message}`;
        throw new SmtpFaultError('invalid_profile', message, { errors: [message] });
    }
}

module.exports = { profileArgs };
