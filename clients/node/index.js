'use strict';
/* smtpfault - drive smtpfault, the fake SMTP server for fault injection, from Node.js tests. */
const { SmtpFault, Scope } = require('./lib/smtpfault');
const { SmtpFaultError } = require('./lib/errors');

module.exports = { SmtpFault, Scope, SmtpFaultError };
