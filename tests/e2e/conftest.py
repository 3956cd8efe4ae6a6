"""
Shared fixtures and helpers for smtpfault's end-to-end tests.

Every test talks to the real binary ($SMTPFAULT_BIN, default build/smtpfault under the repository root),
started on an ephemeral loopback port with a fresh --store-dir. What the server captured is read back from
that directory (ID.eml + ID.json per accepted message); its transcript (stderr) goes to a file next to it.

At teardown each server gets SIGTERM and must exit 0 within a bounded time, with no AddressSanitizer,
LeakSanitizer or UBSan report on stderr, so the same tests check an ASan + UBSan build for leaks and UB.

Test modules import the helpers below with `from conftest import ...` (pytest puts this directory on
sys.path because tests/e2e is not a package).
"""

import json
import os
import re
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENTS_DIR = REPO_ROOT / "tests" / "clients"

# Bounds. Generous enough for an ASan + UBSan build on a busy two-core machine, finite everywhere.
# SMTPFAULT_VALGRIND=1 runs every server under valgrind memcheck (make test-valgrind): a leak or a memory
# error makes it exit 98, which the teardown reports. It is 10-50 times slower, hence the longer bounds.
VALGRIND = os.environ.get("SMTPFAULT_VALGRIND", "") not in ("", "0")
VALGRIND_ARGV = ["valgrind", "--quiet", "--error-exitcode=98", "--leak-check=full",
                 "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect"]
SLOW = 6 if VALGRIND else 1

START_TIMEOUT = 15.0 * SLOW  # ports file written
STOP_TIMEOUT = 20.0 * SLOW  # exit after SIGTERM (the default drain period is 5 s, the linger period 2 s)
IO_TIMEOUT = 20.0 * SLOW  # one socket read or write
CLIENT_TIMEOUT = 60.0 * SLOW  # one external client process (node, php, swaks)

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")

# The ASan build reports leaks at exit and aborts on UB; keep the reports on stderr where we look.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def smtpfault_bin():
    """Path to the server binary: $SMTPFAULT_BIN (relative to the repository root), else build/smtpfault."""
    path = Path(os.environ.get("SMTPFAULT_BIN", "build/smtpfault"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def server_env():
    env = dict(os.environ)
    for key, value in SANITIZER_ENV.items():
        env.setdefault(key, value)
    return env


def sanitizer_reports(text):
    """Lines of text that look like a sanitizer report (empty when clean)."""
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


def raise_fd_limit(wanted):
    """Raise the soft RLIMIT_NOFILE towards wanted (children inherit it); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def poll(predicate, timeout, interval=0.02, message="condition"):
    """Call predicate until it returns something truthy; that value, or an AssertionError after timeout.

    message may be a callable, evaluated only on timeout (to describe the state at that moment).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {text}")
        time.sleep(interval)


def run_binary(args, timeout=30.0, check_sanitizers=True):
    """Run smtpfault with args to completion (for --help, bad flags...); CompletedProcess with text output."""
    proc = subprocess.run(
        [str(smtpfault_bin()), *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env=server_env(),
        stdin=subprocess.DEVNULL,
    )
    if check_sanitizers:
        reports = sanitizer_reports(proc.stderr)
        assert not reports, f"sanitizer report from smtpfault {args}:\n{proc.stderr}"
    return proc


# -- the test PKI ---------------------------------------------------------------------------------------------

_PKI_DIR = None


def suite_pki():
    """A test PKI written once per pytest process by `smtpfault certs DIR`; every server presents it.

    Clients verify against ca.pem; the broken certificates (expired.pem, wrong-host.pem, ...) are there
    for the TLS fault tests.
    """
    global _PKI_DIR
    if _PKI_DIR is None:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="smtpfault-pki-"))
        proc = run_binary(["certs", str(path)])
        assert proc.returncode == 0, f"smtpfault certs failed: {proc.stdout}{proc.stderr}"
        _PKI_DIR = path
    return _PKI_DIR


def ca_file():
    return str(suite_pki() / "ca.pem")


# -- captured messages --------------------------------------------------------------------------------------


class Message:
    """One message the server accepted: its envelope (ID.json) and exact bytes (ID.eml)."""

    def __init__(self, envelope, raw):
        self.envelope = envelope
        self.raw = raw

    @property
    def id(self):
        return self.envelope["id"]

    @property
    def sender(self):
        return self.envelope["sender"]

    @property
    def recipients(self):
        return self.envelope["recipients"]

    def __getitem__(self, key):
        return self.envelope[key]

    def __repr__(self):
        return f"Message({self.envelope!r}, {len(self.raw)} bytes)"


QUEUED_RE = re.compile(r"\b2\.0\.0 Ok: queued as ([0-9A-F]+)\b")


def queued_id(reply):
    """The message ID in a '250 2.0.0 Ok: queued as ID' reply (str or bytes), or an AssertionError."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    m = QUEUED_RE.search(reply)
    assert m, f"not a 'queued as' reply: {reply!r}"
    return m.group(1)


# -- the server under test ----------------------------------------------------------------------------------


class Server:
    """A running smtpfault process on an ephemeral loopback port."""

    def __init__(self, workdir, args=(), smtp="127.0.0.1:0", store=True, log_name="stderr.log", env=None):
        self.workdir = Path(workdir)
        self.extra_env = dict(env or {})  # on top of server_env(): SMTPFAULT_PROFILES, ...
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store_dir = self.workdir / "store" if store else None
        self.ports_file = self.workdir / "ports.json"
        self.stderr_path = self.workdir / log_name
        self.stdout_path = self.workdir / "stdout.log"
        # Every listener on an ephemeral port, so that tests run side by side; the PKI is the suite's.
        self.argv = [str(smtpfault_bin()), "--smtp", smtp, "--submission", "127.0.0.1:0", "--smtps", "127.0.0.1:0",
                     "--admin", "127.0.0.1:0",
                     "--certs-dir", str(suite_pki()), "--ports-file", str(self.ports_file)]
        if VALGRIND:
            self.argv = VALGRIND_ARGV + self.argv
        if self.store_dir is not None:
            self.argv += ["--store-dir", str(self.store_dir)]
        self.argv += [str(a) for a in args]
        self.proc = None
        self.returncode = None
        self.ports = None

    # lifecycle

    def start(self, timeout=START_TIMEOUT):
        binary = smtpfault_bin()
        assert binary.exists(), f"smtpfault binary not found at {binary} (set SMTPFAULT_BIN)"
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env={**server_env(), **self.extra_env},
                cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while not self.ports_file.exists():
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError(
                    f"smtpfault exited with {self.proc.returncode} before listening; stderr:\n{self.log()}"
                )
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError(f"smtpfault wrote no ports file within {timeout}s; stderr:\n{self.log()}")
            time.sleep(0.01)
        self.ports = json.loads(self.ports_file.read_text())
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum=signal.SIGTERM):
        assert self.running(), "the server is not running"
        self.proc.send_signal(signum)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for exit; the exit code, or an AssertionError (after killing it) when it does not exit."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"smtpfault (pid {self.pid}) did not exit within {timeout}s; stderr tail:\n"
                                 + self.log()[-4000:])
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then wait; returns the exit code."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.returncode = self.proc.returncode

    def check_clean_exit(self):
        """The teardown check: exit code 0 and no sanitizer report."""
        problems = []
        if self.returncode == 98 and VALGRIND:
            problems.append("valgrind found a leak or a memory error (exit code 98)")
        elif self.returncode != 0:
            problems.append(f"exit code {self.returncode} (expected 0)")
        reports = sanitizer_reports(self.log())
        if reports:
            problems.append("sanitizer report on stderr: " + reports[0])
        if "event loop closed with handles still open" in self.log():
            problems.append("libuv handles left open at exit")
        if problems:
            raise AssertionError(
                f"smtpfault {' '.join(self.argv[1:])}: " + "; ".join(problems) + "\nstderr tail:\n" + self.log()[-6000:]
            )

    # addresses

    def listener(self, name="smtp"):
        return self.ports[name]

    @property
    def host(self):
        return self.ports["smtp"]["host"]

    @property
    def port(self):
        return self.ports["smtp"]["port"]

    @property
    def address(self):
        return (self.host, self.port)

    def connect(self, timeout=IO_TIMEOUT, rcvbuf=None):
        """A raw protocol client connected to the SMTP listener (greeting not read yet)."""
        return RawClient(self.host, self.port, timeout=timeout, rcvbuf=rcvbuf)

    @property
    def admin_address(self):
        """(host, port) of the admin socket's TCP listener."""
        return (self.ports["admin"]["host"], self.ports["admin"]["port"])

    @property
    def admin_unix(self):
        """The admin socket's unix path (when started with --admin unix:PATH), else None."""
        return self.ports.get("admin_unix")

    def admin(self, unix=False, timeout=IO_TIMEOUT, token=None, rcvbuf=None):
        """An AdminClient connected to the admin socket over TCP, or over the unix socket."""
        if unix:
            assert self.admin_unix, "the server has no unix admin socket (start it with --admin unix:PATH)"
        return AdminClient(self.admin_unix if unix else self.admin_address, timeout=timeout, token=token,
                           rcvbuf=rcvbuf)

    def smtp(self, timeout=IO_TIMEOUT, helo=None):
        """An smtplib.SMTP client, connected (and EHLO'd as `helo` when given)."""
        client = smtplib.SMTP(self.host, self.port, timeout=timeout)
        if helo:
            client.ehlo(helo)
        return client

    # transcript

    def log(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_bytes(self):
        return self.stderr_path.read_bytes()

    def log_lines(self):
        # split on LF only: str.splitlines() would also split on client text such as U+0085 or U+2028
        return self.log().rstrip("\n").split("\n") if self.log() else []

    def wait_for_log(self, pattern, timeout=10.0, count=1):
        """Poll the transcript until the regex matches count times; returns the matches."""
        regex = re.compile(pattern)

        def found():
            matches = regex.findall(self.log())
            return matches if len(matches) >= count else None

        return poll(found, timeout, message=lambda: f"{count} transcript line(s) matching {pattern!r}; tail:\n"
                    + "\n".join(self.log_lines()[-20:]))

    def session_events(self, session_id, event=None):
        """Text transcript lines of one session ('TIME #ID EVENT TEXT'), as (event, text) pairs."""
        out = []
        for line in self.log_lines():
            m = re.match(r"^\S+ #(\d+) (\S+) ?(.*)$", line)
            if m and int(m.group(1)) == session_id and (event is None or m.group(2) == event):
                out.append((m.group(2), m.group(3)))
        return out

    # captured messages

    def message_ids(self):
        if self.store_dir is None or not self.store_dir.exists():
            return []
        # ID.json is written last: a present envelope means a complete message.
        return sorted(p.stem for p in self.store_dir.glob("*.json") if not p.name.startswith("."))

    def message(self, msg_id):
        envelope = json.loads((self.store_dir / f"{msg_id}.json").read_text(encoding="utf-8"))
        raw = (self.store_dir / f"{msg_id}.eml").read_bytes()
        assert envelope["id"] == msg_id, f"{msg_id}.json holds id {envelope['id']!r}"
        assert envelope["size"] == len(raw), f"{msg_id}: envelope size {envelope['size']} != {len(raw)} bytes on disk"
        return Message(envelope, raw)

    def messages(self):
        """Every captured message, oldest first (IDs are a fixed prefix and a hexadecimal counter)."""
        return [self.message(i) for i in self.message_ids()]

    def wait_for_messages(self, count, timeout=10.0):
        poll(lambda: len(self.message_ids()) >= count, timeout, message=f"{count} stored message(s)")
        return self.messages()


# -- raw protocol client -------------------------------------------------------------------------------------


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


# -- admin socket client ------------------------------------------------------------------------------------


class AdminError(AssertionError):
    """The admin socket answered {"ok": false}: .code, .message and the whole .response."""

    def __init__(self, response):
        self.response = response
        err = response.get("error") or {}
        self.code, self.message = err.get("code"), err.get("message")
        super().__init__(f"admin error {self.code}: {self.message} ({response!r})")


def is_event(obj):
    """An event line of an events.subscribe stream (not a response)."""
    return isinstance(obj, dict) and "event" in obj and "ok" not in obj


class AdminClient(SocketClient):
    """A client of the admin socket: one JSON object per line each way. Every read is bounded.

    address is (host, port) for TCP or a path for a unix socket. request(obj) sends obj (plus "token" when the
    client has one) and returns the next response; event lines read meanwhile are kept for next_event().
    """

    def __init__(self, address, timeout=IO_TIMEOUT, token=None, rcvbuf=None):
        self.sock = connect_socket(address, timeout, rcvbuf)
        self.timeout = timeout
        self.token = token
        self.buf = b""
        self.events = []
        self._ids = 0

    def send(self, data):
        """Raw bytes (or text) as they are: no newline added."""
        self.sock.sendall(data.encode("utf-8") if isinstance(data, str) else data)

    def encode(self, obj):
        """obj as a request line (without its newline), with the client's token when it has one."""
        if self.token is not None and isinstance(obj, dict) and "token" not in obj:
            obj = {"token": self.token, **obj}  # first: a line over 64 KiB must show it early
        return json.dumps(obj).encode("utf-8")

    def send_obj(self, obj):
        self.send(self.encode(obj) + b"\n")

    def read_line(self, timeout=None):
        """One line from the server (without its newline); ConnectionError when it closed, TimeoutError."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete line from the admin socket; unread: {self.buf[:200]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError(f"the admin socket closed the connection; unread: {self.buf[:200]!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_json(self, timeout=None):
        line = self.read_line(timeout)
        try:
            return json.loads(line)
        except ValueError:
            raise AssertionError(f"the admin socket sent a line that is not JSON: {line[:300]!r}")

    def response(self, timeout=None):
        """The next response line; event lines before it go to self.events."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            obj = self.read_json(max(0.0, deadline - time.monotonic()))
            if is_event(obj):
                self.events.append(obj)
                continue
            assert isinstance(obj, dict) and isinstance(obj.get("ok"), bool), f"not a response: {obj!r}"
            return obj

    def request(self, obj, timeout=None):
        """Send one request object; its response dict."""
        self.send_obj(obj)
        return self.response(timeout)

    def new_id(self):
        self._ids += 1
        return self._ids

    def call(self, cmd, read_timeout=None, **args):
        """cmd with args and a fresh numeric id; the response (whose id is checked).

        args are the request's arguments (messages.wait's "timeout" among them); read_timeout bounds the read.
        """
        rid = self.new_id()
        resp = self.request({"id": rid, "cmd": cmd, **args}, read_timeout)
        assert resp.get("id") == rid, f"response to id {rid} carries id {resp.get('id')!r}: {resp!r}"
        return resp

    def ok(self, cmd, read_timeout=None, **args):
        """call(), which must succeed; the response."""
        resp = self.call(cmd, read_timeout, **args)
        if resp["ok"] is not True:
            raise AdminError(resp)
        return resp

    def error(self, cmd, code, read_timeout=None, **args):
        """call(), which must fail with code; the response, checked to be {"ok": false, "error": {code, message}}."""
        resp = self.call(cmd, read_timeout, **args)
        check_error(resp, code)
        return resp

    def next_event(self, timeout=None):
        """The next event of a subscription."""
        if self.events:
            return self.events.pop(0)
        obj = self.read_json(timeout)
        assert is_event(obj), f"expected an event line, got {obj!r}"
        return obj

    def events_until(self, predicate, timeout=10.0):
        """Events up to and including the first one for which predicate(event) holds (bounded)."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for an event; got {out[-10:]!r}")
            e = self.next_event(left)
            out.append(e)
            if predicate(e):
                return out


def check_error(resp, code):
    """resp is an error response with this code and a non-empty message, and nothing unexpected."""
    assert resp.get("ok") is False, f"expected error {code}, got {resp!r}"
    err = resp.get("error")
    assert isinstance(err, dict) and set(err) == {"code", "message"}, f"malformed error: {resp!r}"
    assert err["code"] == code, f"expected error code {code!r}, got {resp!r}"
    assert isinstance(err["message"], str) and err["message"], f"empty error message: {resp!r}"
    return err


def ctl_argv(server, *args, unix=False):
    return [str(smtpfault_bin()), "ctl", "--admin",
            f"unix:{server.admin_unix}" if unix else "%s:%d" % server.admin_address, *[str(a) for a in args]]


def ctl(server, *args, unix=False, env=None, timeout=60.0, text=True, input=None, cwd=None):
    """Run `smtpfault ctl --admin ADDR ARGS...` to completion; CompletedProcess (text unless text=False).

    server may be None to pass --admin (or none) in args yourself. env entries are added to the environment,
    a value of None removes the variable. Sanitizer reports on stderr fail the test.
    """
    argv = ctl_argv(server, *args, unix=unix) if server is not None else [str(smtpfault_bin()), "ctl", *map(str, args)]
    full_env = server_env()
    for key in ("SMTPFAULT_ADMIN", "SMTPFAULT_ADMIN_TOKEN"):
        full_env.pop(key, None)  # only what the test says
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=full_env, text=text,
                          errors="replace" if text else None, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL, cwd=cwd)
    stderr = proc.stderr if text else proc.stderr.decode("utf-8", "replace")
    reports = sanitizer_reports(stderr)
    assert not reports, f"sanitizer report from {' '.join(argv[1:])}:\n{stderr}"
    return proc


@pytest.fixture
def short_tmp():
    """A short directory under /tmp for unix sockets (sun_path holds 108 bytes; tmp_path may be longer)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="sf-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["tcp", "unix"])
def admin_transport(request):
    """"tcp" or "unix": tests taking it (or `admin`) run once over each admin transport."""
    return request.param


@pytest.fixture
def admin_srv(short_tmp, server_factory):
    """A server with the usual TCP admin listener and a unix one (short_tmp/admin.sock)."""
    return server_factory("--admin", f"unix:{short_tmp}/admin.sock")


@pytest.fixture
def admin(admin_srv, admin_transport):
    """An AdminClient of admin_srv over admin_transport."""
    with admin_srv.admin(unix=admin_transport == "unix") as client:
        yield client


# -- external clients ----------------------------------------------------------------------------------------


def _run_client(argv, payload, cwd, timeout):
    proc = subprocess.run(
        argv,
        input=json.dumps(payload).encode("utf-8"),
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
    )
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, f"{argv[0]} {argv[1]} exited {proc.returncode}\nstdout: {stdout}\nstderr: {stderr}"
    lines = [l for l in stdout.splitlines() if l.strip()]
    assert lines, f"{argv[1]} printed nothing; stderr: {stderr}"
    try:
        return json.loads(lines[-1])
    except ValueError:
        raise AssertionError(f"{argv[1]} printed no JSON result: {stdout!r}\nstderr: {stderr}")


def run_nodemailer(payload, timeout=CLIENT_TIMEOUT):
    """Run tests/clients/nodemailer-send.js with the JSON payload; its parsed JSON result."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
        pytest.skip("nodemailer is not installed in tests/clients/node_modules (npm ci)")
    return _run_client([node, "nodemailer-send.js"], payload, CLIENTS_DIR, timeout)


PHPMAILER_AUTOLOAD = Path("/usr/share/php/libphp-phpmailer/autoload.php")


def run_phpmailer(payload, timeout=CLIENT_TIMEOUT):
    """Run tests/clients/phpmailer-send.php with the JSON payload; its parsed JSON result."""
    php = shutil.which("php")
    if php is None or not PHPMAILER_AUTOLOAD.exists():
        pytest.skip("php or Debian's libphp-phpmailer is not installed")
    return _run_client([php, "phpmailer-send.php"], payload, CLIENTS_DIR, timeout)


SWAKS = "/usr/bin/swaks"


def run_swaks(server, *args, timeout=CLIENT_TIMEOUT):
    """Run swaks against the server; CompletedProcess with text output (swaks' transcript is on stdout)."""
    if not os.path.exists(SWAKS):
        pytest.skip("swaks is not installed")
    argv = [SWAKS, "--server", server.host, "--port", str(server.port), "--timeout", "20", *args]
    return subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                          stdin=subprocess.DEVNULL)


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture
def server_factory(tmp_path):
    """Start servers with extra arguments: server_factory("--max-recipients", "100", smtp=..., store=..., env=...).

    Teardown stops every server still running (SIGTERM, bounded wait) and fails the test when any of them
    exited non-zero or reported a sanitizer finding. A test that expects another exit code stops the
    server itself and sets `server.expected_exit` (or checks it and sets `server.checked = True`).
    """
    servers = []

    def start(*args, smtp="127.0.0.1:0", store=True, env=None):
        workdir = tmp_path / f"server{len(servers)}"
        srv = Server(workdir, args=args, smtp=smtp, store=store, env=env)
        srv.expected_exit = 0
        servers.append(srv)
        srv.start()
        return srv

    yield start

    failures = []
    for srv in servers:
        if srv.proc is None:
            continue
        try:
            if srv.running():
                srv.stop()
            srv.wait()
            if srv.expected_exit == 0:
                srv.check_clean_exit()
            else:
                assert srv.returncode == srv.expected_exit, f"exit code {srv.returncode}, expected {srv.expected_exit}"
                reports = sanitizer_reports(srv.log())
                assert not reports, "sanitizer report:\n" + srv.log()[-6000:]
        except AssertionError as e:
            failures.append(str(e))
        finally:
            srv.kill()
    if failures:
        pytest.fail("server teardown check failed:\n" + "\n\n".join(failures), pytrace=False)


@pytest.fixture
def server(server_factory):
    """A server with default limits and a fresh store directory."""
    return server_factory()
