"""The binary under test and the suite's bounds: where smtpfault is, how long anything may take (longer under
valgrind), the sanitizer environment and how to spot a report, polling with a deadline, running the binary to
completion."""

import contextlib
import os
import resource
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
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
# The upper bound of a timed wait (a delay, a drip, a timeout): it only catches a hang. How long the fault
# engine and the session wait is unit-tested with injected time (tests/unit/test_fault_engine.c,
# test_session.c); end to end, a 1 s wait can take several on a loaded two-core machine under ASan.
HANG_GUARD = 30.0 * SLOW

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


@contextlib.contextmanager
def nofile_limit(limit):
    """RLIMIT_NOFILE at limit for what starts inside (servers inherit it, as under `ulimit -n`), then at least
    1024 again for the test's own clients; skips the test when the hard limit is under 1024."""
    import pytest

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard RLIMIT_NOFILE is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1024), hard))
