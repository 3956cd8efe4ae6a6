"""_client - SmtpFault (a server, started or connected to), Scope (a virtual server inside it), EventStream."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

from ._connection import DEFAULT_ADMIN, JSON, REQUEST_TIMEOUT, Connection, SmtpFaultError, check
from ._report import assert_report

Profile = Union[str, "os.PathLike[str]", Dict[str, Any]]

WAIT_MARGIN = 30.0  # seconds past a messages.wait timeout before its answer counts as lost
START_TIMEOUT = 60.0  # seconds for a spawned server to write its ports file (ASan builds start slowly)
STOP_TIMEOUT = 60.0  # seconds for a spawned server to exit after SIGTERM (it drains for up to 5 s)
POLL_INTERVAL = 0.02
SETTLE_TIMEOUT = 5.0  # seconds assert_client waits for the client's open sessions (the server lingers 2 s)
LISTENERS = ("smtp", "submission", "smtps")


class Listener(NamedTuple):
    """An SMTP listener: where a mail client connects."""

    host: str
    port: int
    address: str


def _listener(value: Optional[JSON]) -> Optional[Listener]:
    if not value:
        return None
    address = value["address"]
    host, _, port = address.rpartition(":")
    return Listener(value.get("host", host.strip("[]")), int(value.get("port", port)), address)


def profile_args(profile: Profile, source: Optional[str] = None) -> JSON:
    """The request arguments naming a profile: a dict is the profile itself; a Path, or a str with a slash,
    is a file read here and sent inline (so it works against a server elsewhere); another str is the name
    of a shipped profile."""
    if isinstance(profile, dict):
        return {"profile": profile, **({"source": source} if source else {})}
    if isinstance(profile, os.PathLike) or "/" in profile:
        path = os.fspath(profile)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise SmtpFaultError("invalid_profile", f"{path}: cannot read: {e.strerror}",
                                 [f"{path}: cannot read: {e.strerror}"]) from None
        try:
            inline = json.loads(text)
        except ValueError as e:
            message = f"{path}: invalid JSON: {e}"
            raise SmtpFaultError("invalid_profile", message, [message]) from None
        return {"profile": inline, "source": source or path}
    return {"name": profile}


def _drop_none(**args: Any) -> JSON:
    return {k: v for k, v in args.items() if v is not None}


class _Target:
    """The state commands, on the server's own listeners (SmtpFault) or on one scope (Scope)."""

    _scope_id: Optional[str] = None
    _ca: Optional[str] = None
    _ca_file: Optional[str] = None

    def _conn(self) -> Connection:
        raise NotImplementedError

    def _open(self) -> Connection:
        """An extra connection, for commands that hold theirs (messages.wait, events.subscribe)."""
        raise NotImplementedError

    def _request(self, cmd: str, **args: Any) -> JSON:
        if self._scope_id is not None:
            args["scope"] = self._scope_id
        return self._conn().request(cmd, _drop_none(**args))

    def load_profile(self, profile: Profile, source: Optional[str] = None) -> JSON:
        """Put a profile in force (a shipped profile's name, a file, or a dict); what it touches."""
        return self._request("profile.load", **profile_args(profile, source))

    def validate_profile(self, profile: Profile, source: Optional[str] = None) -> JSON:
        """Check a profile without loading it; raises invalid_profile with `errors`."""
        return self._request("profile.validate", **profile_args(profile, source))

    def get_profile(self) -> JSON:
        """The profile in force: name, rules, and the profile itself under "profile"."""
        return self._request("profile.get")

    def clear_profile(self) -> None:
        """Back to the default profile (no rules)."""
        self._request("profile.clear")

    def messages(self, to: Optional[str] = None, from_: Optional[str] = None, since: Optional[str] = None,
                 limit: Optional[int] = None, subject: Optional[str] = None) -> List[JSON]:
        """Captured messages' envelopes, oldest first (globs for to, from_ and subject)."""
        return self._request("messages.list", to=to, **{"from": from_}, subject=subject, since=since,
                             limit=limit)["messages"]

    def message(self, message_id: str, raw: bool = False) -> JSON:
        """One message: "message" (the envelope), "headers" ([name, value] pairs), "body", and with raw
        "raw_base64"."""
        return self._request("messages.get", message=message_id, raw=raw or None)

    def delete_message(self, message_id: str) -> None:
        self._request("messages.delete", message=message_id)

    def clear_messages(self) -> int:
        """Forget every captured message; how many there were."""
        return self._request("messages.clear")["cleared"]

    def wait_for_message(self, to: Optional[str] = None, from_: Optional[str] = None, since: Optional[str] = None,
                         timeout: float = 10.0, subject: Optional[str] = None) -> JSON:
        """The envelope of the first matching message, at once when one is kept, else as soon as one
        arrives; SmtpFaultError("timeout") after `timeout` seconds. Waits on a connection of its own."""
        args = _drop_none(to=to, subject=subject, since=since, timeout=timeout, scope=self._scope_id,
                          **{"from": from_})
        conn = self._open()
        try:
            return conn.request("messages.wait", args, timeout=timeout + WAIT_MARGIN)["message"]
        finally:
            conn.close()

    def sessions(self) -> JSON:
        """{"live": [...], "recent": [...]}: the sessions, without transcripts."""
        return self._request("sessions.list")

    def session(self, session_id: int) -> JSON:
        """One session with its transcript."""
        return self._request("sessions.get", session=session_id)["session"]

    def stats(self) -> JSON:
        return self._request("stats")

    def reset(self) -> JSON:
        """Back to the start profile, with fresh counters and no messages."""
        return self._request("reset")

    def events(self, timeout: Optional[float] = None) -> "EventStream":
        """Every session event from now on, on a connection of its own (close the stream, or use it in a
        with block). With `timeout`, waiting longer than that for one event raises SmtpFaultError("timeout")."""
        return EventStream(self._open(), self._scope_id, timeout)

    def _assert_report(self, expect: Any, client: Optional[str] = None) -> JSON:
        # A session's findings join the story when it ends: give the client's open sessions a moment to.
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while any(client is None or s["client"].rpartition(":")[0].strip("[]") == client
                  for s in self.sessions()["live"]) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        try:
            report = self._request("client.report", client=client)["report"]
        except SmtpFaultError as e:
            if e.code != "not_found":
                raise
            raise AssertionError(f"smtpfault saw no try of this client: {e.message}") from None
        return assert_report(report, **expect)

    @property
    def ca(self) -> str:
        """The PEM of the CA the server's certificates are signed by: give it to clients that verify."""
        if self._ca is None:
            self._ca = self._request("tls.ca")["pem"]
        return self._ca

    @property
    def ca_file(self) -> str:
        """`ca` in a temporary file (removed by close()), for clients that want a path."""
        if self._ca_file is None:
            fd, path = tempfile.mkstemp(prefix="smtpfault-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as f:
                f.write(self.ca)
            self._ca_file = path
        return self._ca_file

    def _remove_ca_file(self) -> None:
        if self._ca_file is not None:
            Path(self._ca_file).unlink(missing_ok=True)
            self._ca_file = None


class EventStream:
    """Session events as dicts ({"event", "session", "time", "text"}; "scope" in a scope), in order. It ends
    when closed, when the server stops, or after a scope's last event {"event": "scope_end"}."""

    def __init__(self, conn: Connection, scope_id: Optional[str], timeout: Optional[float]):
        self._conn = conn
        self._timeout = timeout
        try:
            conn.request("events.subscribe", _drop_none(scope=scope_id))
        except BaseException:
            conn.close()
            raise
        self._done = False

    def __iter__(self) -> Iterator[JSON]:
        return self

    def __next__(self) -> JSON:
        while not self._done:
            line = self._conn.read(self._timeout)
            if line is None:
                self.close()
            elif "event" in line:
                if line["event"] == "scope_end":
                    self.close()
                return line
            else:
                check(line)  # a response, on a connection that sends no requests: only an error is possible
        raise StopIteration

    def close(self) -> None:
        self._done = True
        self._conn.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Scope(_Target):
    """A virtual smtpfault inside the server: its own listeners, profile, messages, sessions and counters.
    It ends with close(), or when its SmtpFault is closed (unless created with keep=True)."""

    def __init__(self, owner: "SmtpFault", response: JSON):
        self._owner = owner
        self.id: str = response["scope"]
        self._scope_id = self.id
        self.keep: bool = response.get("keep", False)
        listeners = response.get("listeners") or {}
        self.smtp: Optional[Listener] = _listener(listeners.get("smtp"))
        self.submission: Optional[Listener] = _listener(listeners.get("submission"))
        self.smtps: Optional[Listener] = _listener(listeners.get("smtps"))
        self.profile: JSON = response.get("profile") or {}  # what its start profile touches, as load_profile answers
        self.closed = False

    def _conn(self) -> Connection:
        return self._owner._conn()

    def _open(self) -> Connection:
        return self._owner._open()

    def report(self) -> JSON:
        """client.report of the scope: every connection to its listeners as one client's story."""
        return self._request("client.report")["report"]

    def assert_client(self, **expect: Any) -> JSON:
        """assert_report on the scope's report (see smtpfault.assert_report): raises AssertionError showing
        what the client did unless it did what `expect` says, e.g. retried_4xx={"at_least": 3, "backoff": True},
        retried_5xx=False, gave_up_after_5xx=True, violations=0."""
        return self._assert_report(expect)

    def close(self) -> None:
        """End the scope: its listeners close, its messages are forgotten. Closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        self._remove_ca_file()
        try:
            self._owner._conn().request("scope.delete", {"scope": self.id})
        except SmtpFaultError as e:
            if e.code not in ("not_found", "disconnected"):  # already ended with its connection
                raise

    def __enter__(self) -> "Scope":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Scope {self.id} smtp={self.smtp and self.smtp.address}>"


class SmtpFault(_Target):
    """A smtpfault server: spawned by start(), or reached by connect(). Its state methods act on the
    server's own listeners; create_scope() gives each test a server of its own."""

    def __init__(self, admin: str, token: Optional[str] = None, timeout: float = REQUEST_TIMEOUT,
                 process: Optional[subprocess.Popen] = None, workdir: Optional[str] = None,
                 ports: Optional[JSON] = None):
        self.admin = admin
        self._token = token
        self._timeout = timeout
        self.process = process
        self.workdir = workdir
        self._ports = ports
        self._main: Optional[Connection] = Connection(admin, token, timeout)
        # A spawned server that close() never stopped is stopped when this object goes, or at exit.
        self._finalizer = weakref.finalize(self, _stop, process) if process is not None else None

    @classmethod
    def connect(cls, admin: Optional[str] = None, token: Optional[str] = None,
                timeout: float = REQUEST_TIMEOUT) -> "SmtpFault":
        """A running server's admin socket (HOST:PORT, [IPV6]:PORT or unix:PATH); by default $SMTPFAULT_ADMIN,
        else 127.0.0.1:2580, with the token $SMTPFAULT_ADMIN_TOKEN (as the Node and PHP packages do)."""
        admin = admin or os.environ.get("SMTPFAULT_ADMIN") or DEFAULT_ADMIN
        if token is None:
            token = os.environ.get("SMTPFAULT_ADMIN_TOKEN")
        return cls(admin, token, timeout)

    @classmethod
    def start(cls, binary: Optional[str] = None, args: Sequence[str] = (), token: Optional[str] = None,
              timeout: float = REQUEST_TIMEOUT, start_timeout: float = START_TIMEOUT) -> "SmtpFault":
        """Spawn the binary (`binary`, else $SMTPFAULT_BIN, else smtpfault on PATH) with every listener on a
        free port of 127.0.0.1, and connect to it. `args` are more options (they win over these). The
        server's SMTPFAULT_* environment is not passed on (but SMTPFAULT_PROFILES is)."""
        binary = binary or os.environ.get("SMTPFAULT_BIN") or shutil.which("smtpfault")
        if not binary:
            raise SmtpFaultError("start_failed", "no smtpfault binary: set SMTPFAULT_BIN or put smtpfault on PATH")
        workdir = tempfile.mkdtemp(prefix="smtpfault-")
        ports_file = Path(workdir, "ports.json")
        argv = [binary, "--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0", "--smtps", "127.0.0.1:0",
                "--admin", "127.0.0.1:0", "--ports-file", str(ports_file),
                *(["--admin-token", token] if token is not None else []), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMTPFAULT_") or k == "SMTPFAULT_PROFILES"}
        with open(Path(workdir, "smtpfault.log"), "wb") as log:
            try:
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
            except OSError as e:
                shutil.rmtree(workdir, ignore_errors=True)
                raise SmtpFaultError("start_failed", f"cannot run {binary}: {e}") from None
        deadline = time.monotonic() + start_timeout
        while True:
            ports = _read_ports(ports_file)
            if ports is not None and "admin" in ports:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                why = f"exited {process.returncode}" if process.returncode is not None else "did not start in time"
                process.kill()
                process.wait()
                raise SmtpFaultError("start_failed", f"{binary} {why}: {_tail(workdir)}")
            time.sleep(POLL_INTERVAL)
        try:
            return cls(ports["admin"]["address"], token, timeout, process, workdir, ports)
        except SmtpFaultError:
            _stop(process)
            raise

    @property
    def log_path(self) -> Optional[str]:
        """The spawned server's stderr (its transcript), while it runs."""
        return str(Path(self.workdir, "smtpfault.log")) if self.workdir else None

    def _listeners(self) -> JSON:
        if self._ports is None:  # connected: the addresses the server reports
            self._ports = {name: {"address": v["address"]} for name, v in self.stats()["listeners"].items()}
        return self._ports

    @property
    def smtp(self) -> Optional[Listener]:
        return _listener(self._listeners().get("smtp"))

    @property
    def submission(self) -> Optional[Listener]:
        return _listener(self._listeners().get("submission"))

    @property
    def smtps(self) -> Optional[Listener]:
        return _listener(self._listeners().get("smtps"))

    def _conn(self) -> Connection:
        if self._main is None:
            raise SmtpFaultError("disconnected", "this SmtpFault is closed")
        return self._main

    def _open(self) -> Connection:
        self._conn()
        return Connection(self.admin, self._token, self._timeout)

    def ping(self) -> bool:
        return self._request("ping")["pong"]

    def version(self) -> JSON:
        return self._request("version")

    def create_scope(self, profile: Optional[Profile] = None, *, listeners: Optional[Sequence[str]] = None,
                     keep: bool = False, source: Optional[str] = None) -> Scope:
        """A new scope with its own listeners, starting with `profile` (a shipped profile's name, a file, or
        a dict; none: no faults). It lives until scope.close(), or this object's close() unless keep."""
        args = profile_args(profile, source) if profile is not None else {}
        args.update(_drop_none(listeners=list(listeners) if listeners is not None else None, keep=keep or None))
        return Scope(self, self._conn().request("scope.create", args))

    def report(self, client: Optional[str] = None) -> Union[JSON, List[str]]:
        """client.report: the story of a client address (127.0.0.1) on the server's own listeners; without
        one, the addresses that have a story, most recently seen first."""
        answer = self._request("client.report", client=client)
        return answer["report"] if client is not None else answer["clients"]

    def assert_client(self, client: str, **expect: Any) -> JSON:
        """Scope.assert_client for a client address on the server's own listeners."""
        return self._assert_report(expect, client)

    def scopes(self) -> List[JSON]:
        """Every scope of the server (scope.list)."""
        return self._request("scope.list")["scopes"]

    def close(self) -> None:
        """Close the admin connection (ending its scopes); a spawned server is stopped (SIGTERM) and waited
        for: one that exits with a failure raises SmtpFaultError("server_failed"), its log kept."""
        self._remove_ca_file()
        if self._main is not None:
            self._main.close()
            self._main = None
        if self.process is not None and self.workdir is not None:
            if self._finalizer is not None:
                self._finalizer.detach()
            status = _stop(self.process)
            if status != 0:
                raise SmtpFaultError("server_failed", f"smtpfault exited {status}: {_tail(self.workdir)}")
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "SmtpFault":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _read_ports(path: Path) -> Optional[JSON]:
    try:
        return json.loads(path.read_text())  # written atomically: present means complete
    except (OSError, ValueError):
        return None


def _stop(process: subprocess.Popen) -> int:
    """SIGTERM, then wait (SIGKILL past STOP_TIMEOUT); the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _tail(workdir: str, lines: int = 20) -> str:
    path = Path(workdir, "smtpfault.log")
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return f"its log {path} ends:\n" + "\n".join(text)
