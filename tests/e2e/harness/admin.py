"""The admin socket: AdminClient (one JSON object per line each way, every read bounded), the error-response
check, and `smtpfault ctl` run as a process."""

import json
import socket
import subprocess
import time

from harness.env import IO_TIMEOUT, sanitizer_reports, server_env, smtpfault_bin
from harness.smtp import SocketClient, connect_socket

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
