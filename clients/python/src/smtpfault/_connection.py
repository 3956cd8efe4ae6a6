"""_connection - one admin socket connection: NDJSON requests with ids, answered in order."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, Dict, List, Optional, Tuple, Union

JSON = Dict[str, Any]

DEFAULT_ADMIN = "127.0.0.1:2580"
REQUEST_TIMEOUT = 30.0  # seconds a command may take to be answered (room for a server under ASan)
CONNECT_TIMEOUT = 10.0


class SmtpFaultError(Exception):
    """An error of the admin socket (`code` as in docs/admin.md: not_found, bad_argument, invalid_profile, timeout,
    unauthorized, ...), or of this package: `disconnected` (the admin socket cannot be reached or closed),
    `start_failed` and `server_failed` (SmtpFault.start / close of a spawned server)."""

    def __init__(self, code: str, message: str, errors: Optional[List[str]] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.errors: List[str] = list(errors or [])  # invalid_profile: every error, as JSON paths


def parse_address(address: str) -> Tuple[int, Union[str, Tuple[str, int]]]:
    """(socket family, address) of HOST:PORT, [IPV6]:PORT or unix:PATH."""
    if address.startswith("unix:"):
        return socket.AF_UNIX, address[5:]
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"admin address {address!r} is not HOST:PORT, [IPV6]:PORT or unix:PATH")
    if host.startswith("["):
        return socket.AF_INET6, (host.strip("[]"), int(port))
    return socket.AF_INET, (host, int(port))


class Connection:
    """One connection to the admin socket. Requests are serialised by a lock: the server answers a
    connection's requests in order, so each request waits for its own response."""

    def __init__(self, address: str, token: Optional[str] = None, timeout: float = REQUEST_TIMEOUT):
        family, addr = parse_address(address)
        self.address = address
        self.timeout = timeout
        self._token = token
        self._lock = threading.Lock()
        self._next_id = 0
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(CONNECT_TIMEOUT)
            self._sock.connect(addr)
        except OSError as e:
            self._sock.close()
            raise SmtpFaultError("disconnected", f"cannot connect to the admin socket {address}: {e}") from None
        self._file = self._sock.makefile("rwb")
        self._broken = False

    def send(self, cmd: str, args: JSON) -> int:
        """Write one request; its id."""
        if self._broken:
            raise SmtpFaultError("disconnected", f"the connection to {self.address} is closed")
        self._next_id += 1
        req: JSON = {"token": self._token} if self._token is not None else {}  # first: see the 64 KiB rule
        req.update(id=self._next_id, cmd=cmd)
        req.update(args)
        try:
            self._file.write(json.dumps(req).encode() + b"\n")
            self._file.flush()
        except OSError as e:
            self._fail(f"cannot write to {self.address}: {e}")
        return self._next_id

    def read(self, timeout: Optional[float]) -> Optional[JSON]:
        """The next line the server sends, parsed; None at the end of the stream. A timeout breaks the
        connection (the rest of a line may still come) and raises SmtpFaultError("timeout")."""
        try:
            self._sock.settimeout(timeout)
            line = self._file.readline()
        except socket.timeout:
            self._broken = True
            raise SmtpFaultError("timeout", f"no answer from {self.address} in {timeout} s") from None
        except OSError as e:
            self._fail(f"cannot read from {self.address}: {e}")
        if not line.endswith(b"\n"):
            self._broken = True
            return None
        return json.loads(line)

    def request(self, cmd: str, args: Optional[JSON] = None, timeout: Optional[float] = None) -> JSON:
        """Send one command and return its response without "id" and "ok"; an error response raises
        SmtpFaultError with its code."""
        with self._lock:
            want = self.send(cmd, args or {})
            response = self.read(self.timeout if timeout is None else timeout)
        if response is None:
            self._fail(f"{self.address} closed the connection before answering {cmd}")
        if response.get("id") != want:
            self._fail(f"{self.address} answered {response.get('id')!r} to request {want}")
        return check(response)

    def _fail(self, message: str):
        self._broken = True
        raise SmtpFaultError("disconnected", message)

    def close(self) -> None:
        self._broken = True
        for closing in (self._file, self._sock):
            try:
                closing.close()
            except OSError:
                pass  # already reset by the peer: nothing left to release


def check(response: JSON) -> JSON:
    """The fields of an ok response; SmtpFaultError for an error response."""
    if not response.get("ok"):
        error = response.get("error") or {}
        raise SmtpFaultError(error.get("code", "internal"), error.get("message", json.dumps(response)),
                             response.get("errors"))
    return {k: v for k, v in response.items() if k not in ("id", "ok")}
