// check.ts - the declarations as a CommonJS TypeScript project uses them (tsc --noEmit in types.test.js).
import { SmtpFault, SmtpFaultError, Scope, Message, Envelope, Listener } from 'smtpfault';

export async function example(): Promise<void> {
    const sf: SmtpFault = await SmtpFault.start({ args: ['--user', 'app@example.com:secret'], log: 'inherit' });
    const other = await SmtpFault.connect({ admin: '127.0.0.1:2580', token: 't', mapAddress: ({ port }) => ({ host: 'h', port }) });
    const scope: Scope = await sf.createScope({ profile: 'gmail-535-bad-credentials', listeners: ['smtp'], keep: false });
    const smtp: Listener | null = scope.smtp;
    const port: number | undefined = smtp?.port;
    const ca: string | null = scope.ca;
    await scope.loadProfile({ rules: [{ when: { stage: 'rcpt' }, do: { reply: '550 5.1.1 no' } }] }, { source: 'x.json' });
    const msg: Message = await scope.waitForMessage({ to: 'new-user@example.com', timeout: 10000 });
    const subject: string | null = msg.subject;
    const recipients: string[] = msg.recipients;
    const listed: Envelope[] = await scope.messages({ to: '*@example.com', limit: 10 });
    const { live, recent } = await scope.sessions();
    const ids: number[] = [...live, ...recent].map(s => s.id);
    const fired: number = (await scope.stats()).faults.fired;
    for await (const ev of scope.events()) {
        const kind: string = ev.event;
        if (kind === 'close') {
            break;
        }
    }
    try {
        await scope.close();
    } catch (err) {
        if (err instanceof SmtpFaultError) {
            const code: string = err.code;
            const errors: string[] = err.errors;
            console.log(code, errors);
        }
    }
    const status: number | string | null = await sf.close();
    await other.close();
    console.log(port, ca, subject, recipients, listed, ids, fired, status);
}
