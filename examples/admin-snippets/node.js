// Load a profile, wait for a message, reset: smtpfault's admin socket from Node.js, no dependencies.
const net = require('net');
const addr = process.env.SMTPFAULT_ADMIN || '127.0.0.1:2580'; // HOST:PORT or unix:PATH
const sock = addr.startsWith('unix:') ? net.connect(addr.slice(5))
  : net.connect(Number(addr.slice(addr.lastIndexOf(':') + 1)), addr.slice(0, addr.lastIndexOf(':')));
sock.setEncoding('utf8');
sock.setTimeout(30000, () => sock.destroy(new Error('no answer from ' + addr)));
let buffered = '', waiting = [];
sock.on('data', chunk => { // one response per line, in the order of the requests
  buffered += chunk;
  for (let nl; (nl = buffered.indexOf('\n')) >= 0;) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    waiting.shift()(JSON.parse(line));
  }
});
const request = req => new Promise(resolve => { waiting.push(resolve); sock.write(JSON.stringify(req) + '\n'); });

(async () => {
  await request({ cmd: 'profile.load', profile: { name: 'flaky-rcpt', rules: [
    { when: { stage: 'rcpt', rcpt: '*@example.com', times: 1 }, do: { reply: '451 4.3.0 Try again later' } }] } });
  // ... the code under test sends its mail here ...
  const r = await request({ cmd: 'messages.wait', to: '*@example.com', timeout: 20 });
  if (!r.ok) throw new Error(r.error.code + ': ' + r.error.message);
  console.log('got', r.message.id, 'for', r.message.recipients.join(','));
  await request({ cmd: 'reset' });
  sock.end();
})().catch(e => { console.error(e.message); process.exit(1); });
