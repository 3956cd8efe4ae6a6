#!/usr/bin/python3
"""smtpgen: an SMTP load generator with real TLS (STARTTLS or implicit TLS), for bench/tls_bench.py.

Usage: smtpgen.py HOST PORT --messages N [--sessions S] [--mode plain|starttls|smtps] [--reuse] [--resume]
                  [--auth USER:PASS] [--size BYTES] [--cafile PEM] [--pipelining] [--timeout S]

One process, one thread: a selector (epoll) loop over S sessions, each a small state machine written as a
Python generator. The cryptography is OpenSSL's, through the standard library's ssl module, on non-blocking
sockets (SSLWantRead/SSLWantWrite), so no byte of TLS goes through Python code. Each session, like
Postfix's smtp-source:
  * connects (non-blocking), then for smtps does the TLS handshake and reads the 220; for starttls reads the
    220, says EHLO, STARTTLS, does the handshake and says EHLO again; for plain says EHLO;
  * with --auth, AUTH PLAIN (a 235 is required);
  * sends messages one at a time, taken from a shared count so that sessions finish together: MAIL FROM,
    RCPT TO, DATA, the content and "." each wait for their reply (lock-step, as Nodemailer and smtp-source
    do), or, with --pipelining, MAIL, RCPT and DATA go in one write;
  * with --reuse keeps the connection for its next message; without, says QUIT after each message and
    connects again;
  * with --resume offers the TLS session (ticket) of its previous connection to the same server.
Every reply is checked (220, 250, 354, 235, 221); any other reply, a lost connection or --timeout seconds
without progress ends the run with exit status 1 and the reason on stderr. A connection ends with an RST
after the 221 (SO_LINGER 0, as smtp-source does), so no TIME_WAIT piles up on either side.

On exit 0, one JSON object on stdout: messages acknowledged (250 after "."), connections, TLS handshakes,
how many were resumed, the elapsed time from the first connect to the last reply, and this process's CPU
time over the same window (user and system), so the caller can tell whether the generator set the pace.
Only Debian's python3 standard library is used.
"""

import argparse
import base64
import errno
import json
import os
import resource
import selectors
import socket
import ssl
import sys
import time

SENDER = b"bench@example.com"
RECIPIENT = b"sink@example.com"
HELO = b"bench.invalid"

WANT_READ, WANT_WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class GenError(Exception):
    pass


def make_content(size):
    """A message of about size bytes of body after a few headers, in CRLF lines, ending with '.'."""
    head = (b"From: <" + SENDER + b">\r\nTo: <" + RECIPIENT + b">\r\nSubject: smtpgen\r\n"
            b"Message-Id: <smtpgen@bench.invalid>\r\n\r\n")
    line = b"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\r\n"  # 74 bytes
    body = (line * (size // len(line) + 1))[:max(0, size - 2)]
    if body and not body.endswith(b"\r\n"):
        body = body[:-2] + b"\r\n" if len(body) >= 2 else b""
    return head + body + b".\r\n"


class Session:
    """One client session: its connections, one after another, and the messages it sends on them."""

    def __init__(self, gen, index):
        self.gen = gen
        self.index = index
        self.sock = None  # the plain socket, or the SSLSocket wrapping it
        self.fd = None
        self.registered = None  # the events the selector watches for this session's fd
        self.buf = bytearray()
        self.tls_session = None
        self.flow = self.run()
        self.done = False

    # -- waiting ------------------------------------------------------------------------------------------
    def watch(self, events):
        sel = self.gen.sel
        if self.registered is None:
            sel.register(self.fd, events, self)
        elif self.registered != events:
            sel.modify(self.fd, events, self)
        self.registered = events

    def step(self):
        """Run until the session waits again: it yields the events to wait for."""
        try:
            events = next(self.flow)
        except StopIteration:
            self.done = True
            return
        self.watch(events)

    # -- I/O ----------------------------------------------------------------------------------------------
    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.fd = s, s.fileno()
        r = s.connect_ex((self.gen.host, self.gen.port))
        if r == errno.EINPROGRESS:
            yield WANT_WRITE
            r = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if r != 0:
            raise GenError(f"connect to {self.gen.host}:{self.gen.port}: {os.strerror(r)}")
        self.gen.connections += 1

    def handshake(self):
        g = self.gen
        self.sock = g.ctx.wrap_socket(self.sock, server_hostname=g.server_name, do_handshake_on_connect=False,
                                      session=self.tls_session if g.resume else None)
        while True:
            try:
                self.sock.do_handshake()
                break
            except ssl.SSLWantReadError:
                yield WANT_READ
            except ssl.SSLWantWriteError:
                yield WANT_WRITE
            except (ssl.SSLError, OSError) as e:
                raise GenError(f"TLS handshake: {e}")
        g.handshakes += 1
        if self.sock.session_reused:
            g.resumed += 1

    def send(self, data):
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except (BlockingIOError, ssl.SSLWantWriteError):
                yield WANT_WRITE
            except ssl.SSLWantReadError:
                yield WANT_READ
            except OSError as e:
                raise GenError(f"send: {e}")

    def reply(self, expect, what):
        """Read one complete reply; it must have code expect. Returns its text."""
        while True:
            end = self.complete_reply()
            if end:
                text = bytes(self.buf[:end])
                del self.buf[:end]
                if text[:3] != expect:
                    raise GenError(f"session {self.index}: {what}: expected {expect.decode()}, got "
                                   f"{text.decode(errors='replace').strip()!r}")
                return text
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                yield WANT_READ
                continue
            except ssl.SSLWantWriteError:
                yield WANT_WRITE
                continue
            except OSError as e:
                raise GenError(f"session {self.index}: {what}: {e}")
            if not data:
                raise GenError(f"session {self.index}: {what}: the server closed the connection")
            self.buf += data

    def complete_reply(self):
        """The length of the first complete reply in buf (its last line is 'NNN ' or 'NNN'), or 0."""
        start = 0
        buf = self.buf
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                return 0
            if nl - start < 4 or buf[start + 3] != 0x2D:  # not "NNN-"
                return nl + 1
            start = nl + 1

    def command(self, line, expect, what):
        yield from self.send(line)
        return (yield from self.reply(expect, what))

    def close(self):
        if self.sock is None:
            return
        if self.registered is not None:
            self.gen.sel.unregister(self.fd)
            self.registered = None
        try:
            # RST instead of FIN, as smtp-source does: the server's close_notify may still be unread.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.sock.close()
        self.sock = None
        self.buf.clear()

    # -- the session ----------------------------------------------------------------------------------------
    def open(self):
        g = self.gen
        yield from self.connect()
        if g.mode == "smtps":
            yield from self.handshake()
        yield from self.reply(b"220", "greeting")
        if g.mode == "starttls":
            yield from self.command(b"EHLO " + HELO + b"\r\n", b"250", "EHLO")
            yield from self.command(b"STARTTLS\r\n", b"220", "STARTTLS")
            if self.buf:
                raise GenError(f"session {self.index}: data after the STARTTLS reply, before TLS")
            yield from self.handshake()
        yield from self.command(b"EHLO " + HELO + b"\r\n", b"250", "EHLO")
        if g.auth is not None:
            yield from self.command(b"AUTH PLAIN " + g.auth + b"\r\n", b"235", "AUTH")

    def end(self):
        yield from self.command(b"QUIT\r\n", b"221", "QUIT")
        if self.sock.__class__ is ssl.SSLSocket and self.gen.resume:
            self.tls_session = self.sock.session  # its ticket arrived with the replies read since
        self.close()

    def run(self):
        g = self.gen
        try:
            while g.take_message():
                if self.sock is None:
                    yield from self.open()
                if g.pipelining:
                    yield from self.send(g.envelope)
                    yield from self.reply(b"250", "MAIL FROM")
                    yield from self.reply(b"250", "RCPT TO")
                    yield from self.reply(b"354", "DATA")
                else:
                    yield from self.command(g.mail, b"250", "MAIL FROM")
                    yield from self.command(g.rcpt, b"250", "RCPT TO")
                    yield from self.command(b"DATA\r\n", b"354", "DATA")
                yield from self.command(g.content, b"250", "end of data")
                g.acked += 1
                g.progress = time.monotonic()
                if not g.reuse:
                    yield from self.end()
            if self.sock is not None:
                yield from self.end()
        finally:
            self.close()


class Generator:
    def __init__(self, args):
        self.host, self.port = args.host, args.port
        self.mode = args.mode
        self.reuse, self.resume, self.pipelining = args.reuse, args.resume, args.pipelining
        self.server_name = args.server_name
        self.auth = None
        if args.auth:
            user, _, password = args.auth.partition(":")
            self.auth = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        self.mail = b"MAIL FROM:<" + SENDER + b">\r\n"
        self.rcpt = b"RCPT TO:<" + RECIPIENT + b">\r\n"
        self.envelope = self.mail + self.rcpt + b"DATA\r\n"
        self.content = make_content(args.size)
        self.ctx = None
        if self.mode != "plain":
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            if args.cafile:
                self.ctx.load_verify_locations(args.cafile)
            else:
                self.ctx.check_hostname = False
                self.ctx.verify_mode = ssl.CERT_NONE
        self.left = args.messages
        self.acked = self.connections = self.handshakes = self.resumed = 0
        self.sel = selectors.DefaultSelector()
        self.timeout = args.timeout
        self.sessions = [Session(self, i) for i in range(min(args.sessions, max(1, args.messages)))]
        self.progress = time.monotonic()

    def take_message(self):
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def run(self):
        for s in self.sessions:
            s.step()
        live = sum(1 for s in self.sessions if not s.done)
        while live:
            events = self.sel.select(1.0)
            if not events and time.monotonic() - self.progress > self.timeout:
                raise GenError(f"no progress for {self.timeout:.0f} s ({self.acked} messages acknowledged)")
            for key, _ in events:
                s = key.data
                s.step()
                if s.done:
                    live -= 1


def main():
    ap = argparse.ArgumentParser(description="SMTP load generator with real TLS (see the module docstring).")
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--messages", type=int, required=True, help="messages to send in all")
    ap.add_argument("--sessions", type=int, default=1, help="concurrent sessions (default 1)")
    ap.add_argument("--mode", choices=("plain", "starttls", "smtps"), default="starttls")
    ap.add_argument("--reuse", action="store_true", help="send every message of a session on one connection")
    ap.add_argument("--resume", action="store_true", help="offer the previous connection's TLS session")
    ap.add_argument("--pipelining", action="store_true", help="send MAIL, RCPT and DATA in one write")
    ap.add_argument("--auth", metavar="USER:PASS", help="AUTH PLAIN after EHLO")
    ap.add_argument("--size", type=int, default=1024, help="message body bytes (default 1024)")
    ap.add_argument("--cafile", help="verify the server's certificate against this CA (default: no check)")
    ap.add_argument("--server-name", default="localhost", help="SNI and the name verified (default localhost)")
    ap.add_argument("--timeout", type=float, default=30, help="give up after this long without progress")
    args = ap.parse_args()
    gen = Generator(args)
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    try:
        gen.run()
    except GenError as e:
        print(f"smtpgen: {e}", file=sys.stderr)
        return 1
    t1, cpu1 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    elapsed = t1 - t0
    user, system = cpu1.ru_utime - cpu0.ru_utime, cpu1.ru_stime - cpu0.ru_stime
    json.dump({"messages": gen.acked, "connections": gen.connections, "handshakes": gen.handshakes,
               "resumed": gen.resumed, "seconds": round(elapsed, 6), "cpu_user_s": round(user, 4),
               "cpu_system_s": round(system, 4), "busy": round((user + system) / elapsed, 3) if elapsed else None},
              sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
