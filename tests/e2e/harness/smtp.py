"""Raw SMTP over a socket: RawClient reads replies exactly as the server sends them; helpers for one DATA
transaction, dot-stuffing, a small RFC 5322 message and the queued-as ID of a reply."""

import re
import socket
from pathlib import Path

from harness.env import IO_TIMEOUT

QUEUED_RE = re.compile(r"\b2\.0\.0 Ok: queued as ([0-9A-F]+)\b")


def queued_id(reply):
    """The message ID in a '250 2.0.0 Ok: queued as ID' reply (str or bytes), or an AssertionError."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    m = QUEUED_RE.search(reply)
    assert m, f"not a 'queued as' reply: {reply!r}"
    return m.group(1)


class Reply:
    """One SMTP reply: code and text lines (without the code and separator)."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def text(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return f"Reply({self.code}, {self.lines!r})"


def connect_socket(address, timeout, rcvbuf=None):
    """A connected stream socket: address is (host, port) for TCP, or a unix socket's path."""
    if isinstance(address, (str, Path)):
        sock, address = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), str(address)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if rcvbuf is not None:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


class SocketClient:
    """What RawClient and AdminClient share: self.sock, closed on leaving a with block."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RawClient(SocketClient):
    """A plain socket client that reads replies exactly as the server sends them. Every call is bounded."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, rcvbuf=None):
        self.sock = connect_socket((host, port), timeout, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reset(self):
        """Close with an RST (SO_LINGER 0) instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _read_line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed by the server; unread: {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        assert line.endswith(b"\r"), f"reply line not ended by CRLF: {line!r}"
        return line[:-1]

    def reply(self):
        """Read one (possibly multi-line) reply."""
        lines, raw = [], []
        while True:
            line = self._read_line()
            raw.append(line)
            assert re.match(rb"^\d{3}[ -]", line) or re.match(rb"^\d{3}$", line), f"malformed reply line {line!r}"
            lines.append(line[4:].decode("utf-8", "replace"))
            if len(line) == 3 or line[3:4] == b" ":
                code = int(line[:3])
                assert all(r[:3] == line[:3] for r in raw), f"mixed codes in one reply: {raw!r}"
                return Reply(code, lines, raw)

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def expect(self, code, contains=None):
        r = self.reply()
        assert r.code == code, f"expected {code}, got {r!r}"
        if contains is not None:
            assert contains in r.text, f"expected {contains!r} in {r!r}"
        return r

    def cmd(self, line, code=None, contains=None):
        """Send one command line (CRLF added) and read its reply, checking code/text when given."""
        self.send((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\r\n")
        return self.expect(code, contains) if code is not None else self.reply()

    def greet(self, helo="client.example"):
        self.expect(220, "ESMTP smtpfault")
        return self.cmd(f"EHLO {helo}", 250)

    def read_until_closed(self, timeout=IO_TIMEOUT):
        """Everything the server sends until it closes the connection (bounded)."""
        self.sock.settimeout(timeout)
        data, self.buf = self.buf, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data

    def local_address(self):
        host, port = self.sock.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def transaction(client, sender, recipients, body, helo=None):
    """One DATA transaction on a RawClient already greeted; body is dot-stuffed here. Returns the ID."""
    if helo:
        client.cmd(f"EHLO {helo}", 250)
    client.cmd(f"MAIL FROM:<{sender}>", 250)
    for r in recipients:
        client.cmd(f"RCPT TO:<{r}>", 250)
    client.cmd("DATA", 354)
    client.send(dot_stuff(body) + b".\r\n")
    return queued_id(client.expect(250).text)


def dot_stuff(body):
    """DATA transparency (RFC 5321 4.5.2): a line starting with '.' gets another; body must end in CRLF."""
    assert body.endswith(b"\r\n"), "the body must end with CRLF"
    lines = body.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


def make_message(subject, body, sender="sender@example.org", to="rcpt@example.org", extra_headers=()):
    """A small RFC 5322 message as bytes with CRLF line ends."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = [f"From: <{sender}>", f"To: <{to}>", f"Subject: {subject}", "Message-ID: <" + subject.replace(" ", ".")
               + "@test.example>", *extra_headers]
    head = "\r\n".join(headers).encode("utf-8")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return head + b"\r\n\r\n" + body
