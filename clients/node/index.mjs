// smtpfault as an ES module: the CommonJS package's classes.
import smtpfault from './index.js';

export const { SmtpFault, Scope, SmtpFaultError } = smtpfault;
