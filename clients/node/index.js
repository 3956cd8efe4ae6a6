'use strict';
/* smtpfault - drive smtpfault, the fake SMTP server for fault injection, from Node.js tests. */
const { SmtpFault, Scope } = require('./lib/smtpfault');
const { SmtpFaultError } = require('./lib/errors');
const { assertReport, describe } = require('./lib/report');

module.exports = { SmtpFault, Scope, SmtpFaultError, assertReport, describe };
