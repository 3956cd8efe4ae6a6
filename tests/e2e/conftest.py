"""
Fixtures for smtpfault's end-to-end tests. The helpers live in the `harness` package next to this file.

Every test talks to the real binary ($SMTPFAULT_BIN, default build/smtpfault under the repository root),
started on an ephemeral loopback port with a fresh --store-dir. What the server captured is read back from
that directory (ID.eml + ID.json per accepted message); its transcript (stderr) goes to a file next to it.

At teardown each server gets SIGTERM and must exit 0 within a bounded time, with no AddressSanitizer,
LeakSanitizer or UBSan report on stderr, so the same tests check an ASan + UBSan build for leaks and UB.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

# The names test modules imported from here before the harness package existed, re-exported so that
# `from conftest import X` keeps working. New tests import from harness (`from harness.server import Server`).
from harness.admin import AdminClient, AdminError, check_error, ctl, ctl_argv, is_event  # noqa: F401
from harness.clients import (PHPMAILER_AUTOLOAD, SWAKS, _run_client, run_nodemailer, run_phpmailer,  # noqa: F401
                             run_swaks)
from harness.env import (CLIENT_TIMEOUT, CLIENTS_DIR, IO_TIMEOUT, REPO_ROOT, SANITIZER_ENV,  # noqa: F401
                         SANITIZER_MARKERS, SLOW, START_TIMEOUT, STOP_TIMEOUT, VALGRIND, VALGRIND_ARGV, poll,
                         raise_fd_limit, run_binary, sanitizer_reports, server_env, smtpfault_bin)
from harness.pki import ca_file, suite_pki  # noqa: F401
from harness.server import Message, Server  # noqa: F401
from harness.smtp import (QUEUED_RE, RawClient, Reply, SocketClient, connect_socket, dot_stuff,  # noqa: F401
                          make_message, queued_id, transaction)


@pytest.fixture
def short_tmp():
    """A short directory under /tmp for unix sockets (sun_path holds 108 bytes; tmp_path may be longer)."""
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


# -- servers ------------------------------------------------------------------------------------------------


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
            srv.finish(srv.expected_exit)
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        pytest.fail("server teardown check failed:\n" + "\n\n".join(failures), pytrace=False)


@pytest.fixture
def server(server_factory):
    """A server with default limits and a fresh store directory."""
    return server_factory()
