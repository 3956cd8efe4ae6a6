"""HTTP on the admin port (docs/http.md): a urllib client for whole requests, and a raw-socket client that
reads responses off a stream it writes by hand (split writes, pipelining, event streams). Every read is
bounded."""

import json
import socket
import time
import urllib.error
import urllib.request

from .env import IO_TIMEOUT
from .smtp import connect_socket


def base_url(srv):
    host, port = srv.admin_address
    return f"http://{host}:{port}"


def http(srv, method, path, body=None, token=None, headers=None, timeout=IO_TIMEOUT):
    """One request through urllib: (status, headers, body bytes); an HTTP error status is returned, not raised.

    body: bytes as they are, or any other value sent as JSON."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base_url(srv) + path, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def http_json(srv, method, path, body=None, token=None, headers=None, timeout=IO_TIMEOUT):
    """http(), whose body must be JSON: (status, object)."""
    status, hdrs, data = http(srv, method, path, body, token, headers, timeout)
    assert hdrs.get("Content-Type") == "application/json", f"{method} {path}: {hdrs.get('Content-Type')} {data!r}"
    return status, json.loads(data)


class RawHttp:
    """A raw connection to the admin port: write bytes as they come, read whole responses in order."""

    def __init__(self, srv, timeout=IO_TIMEOUT, unix=False):
        self.sock = connect_socket(srv.admin_unix if unix else srv.admin_address, timeout, None)
        self.timeout = timeout
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete response; unread: {self.buf[:300]!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        if not chunk:
            raise ConnectionError(f"the server closed the connection; unread: {self.buf[:300]!r}")
        self.buf += chunk

    def read_until(self, marker, timeout=None):
        """The bytes up to and including marker."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while marker not in self.buf:
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(marker)
        return head + marker

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, timeout=None):
        """The next response: (status, {lower-case name: value}, body bytes). Needs a Content-Length."""
        head = self.read_until(b"\r\n\r\n", timeout).decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if status == 100:
            return self.response(timeout)
        if headers.get("content-type") == "text/event-stream":
            return status, headers, b""
        return status, headers, self.read_exact(int(headers["content-length"]), timeout)

    def json(self, timeout=None):
        status, headers, body = self.response(timeout)
        return status, json.loads(body)

    def closed(self, timeout=None):
        """The server closes the connection (after what it still sends, which is dropped) within timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self._fill(deadline)
        except ConnectionError:
            return True
        except ConnectionResetError:
            return True

    def event(self, timeout=None):
        """The next Server-Sent Event of a stream: (id, parsed data); comments and retry lines are skipped."""
        while True:
            block = self.read_until(b"\n\n", timeout).decode()
            fields = dict(line.split(": ", 1) for line in block.strip("\n").split("\n") if ": " in line
                          and not line.startswith(":"))
            if "data" in fields:
                return int(fields["id"]), json.loads(fields["data"])


def request_bytes(method, path, body=b"", headers=None, token=None, version="HTTP/1.1"):
    """A request as bytes, with Host and (when there is a body or the method takes one) Content-Length."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT", "DELETE"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
