// check.mts - the declarations as an ES module TypeScript project uses them (tsc --noEmit in types.test.js).
import { SmtpFault, SmtpFaultError } from 'smtpfault';

const sf = await SmtpFault.start();
const scope = await sf.createScope({ profile: { rules: [] } });
const port: number = scope.submission!.port;
await scope.close().catch((err: unknown) => err instanceof SmtpFaultError && err.code === 'not_found');
await sf.close();
console.log(port);
