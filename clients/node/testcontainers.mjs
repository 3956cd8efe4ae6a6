// smtpfault/testcontainers as an ES module.
import tc from './testcontainers.js';

export const { SmtpfaultContainer } = tc;
