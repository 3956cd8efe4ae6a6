"""benchlib: what the benchmarks in bench/ share (bench.py, tls_bench.py, load.py, soak.py).

Reading a process's CPU time, memory and wake-ups from /proc, the machine's load from /proc/stat (to tell
when other processes disturbed a measurement), starting smtpfault and asking its admin socket, stopping what
a script started (by PID only), pinning to a CPU, raising RLIMIT_NOFILE, and printing tables. Only Debian's
python3 standard library is used.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
NAME = "bench"  # the prefix of log lines; each script sets its own


class BenchError(Exception):
    pass


def log(msg):
    print(f"{NAME}: {msg}", file=sys.stderr, flush=True)


def find_tool(name):
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    raise BenchError(f"{name} not found (Debian package postfix)")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_banner(port, proc, deadline_s=5.0):
    """Wait until a server greets on port; the check is a plain SMTP session ending with QUIT."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as s:
                s.noop()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_status(pid, field):
    """A field of /proc/PID/status in kB (VmHWM, VmRSS), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def sum_tasks(pid, read):
    """read(open file of /proc/PID/task/TID/) summed over every thread of pid; None if pid is gone."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                total += read(lambda name: open(f"/proc/{pid}/task/{tid}/{name}"))
            except OSError:
                pass  # a thread that just ended
    except OSError:
        return None
    return total


def cpu_ns(pid):
    """CPU time of every thread of pid in ns, user and system (/proc/PID/task/*/schedstat)."""
    def read(open_task):
        with open_task("schedstat") as f:
            return int(f.read().split()[0])
    return sum_tasks(pid, read)


def wakeups(pid):
    """Voluntary context switches of every thread of pid: how often it slept waiting for input."""
    def read(open_task):
        with open_task("status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
        return 0
    return sum_tasks(pid, read)


def user_s(pid):
    """User-mode CPU time of a process, all threads, in seconds (/proc/PID/stat utime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        return int(text[text.rindex(")") + 2:].split()[11]) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def machine_user_s():
    """User-mode CPU time of the whole machine in seconds (/proc/stat: user + nice)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return (int(fields[1]) + int(fields[2])) / CLK_TCK


def stop(proc, name, timeout=10):
    """Stop a process started here, by its PID (SIGTERM, then SIGKILL); returns its exit status."""
    if proc is None:
        return None
    if proc.poll() is not None:
        return proc.returncode
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"{name} (pid {proc.pid}) did not stop after {timeout} s: SIGKILL")
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()


def pin(cmd, cpu):
    return cmd if cpu is None else ["taskset", "-c", str(cpu)] + cmd




def ours_user_s(pids):
    """User-mode CPU time of this process, its reaped children and the processes pids (all threads)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    return own + kids + sum(user_s(p) for p in pids)


def round_count(n, minimum, maximum):
    """n within [minimum, maximum], rounded to two significant digits."""
    n = max(minimum, min(maximum, int(n)))
    digits = len(str(n)) - 2
    return max(minimum, round(n, -digits) if digits > 0 else n)


def fmt_rate(r):
    return f"{r:,.0f}"


def human_bytes(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:g} {unit}"
    return f"{n} B"


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMGkmg]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a byte count (K/M/G suffixes allowed)")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def print_table(headers, rows):
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    print(line(headers))
    print("-" * len(line(headers)))
    for row in rows:
        print(line(row))


def cpu_plan(no_pin):
    """(server CPU, client CPU, description): the servers on the last CPU, the load on the first."""
    ncpu = os.cpu_count() or 1
    pinned = not no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    if not pinned:
        return None, None, "no CPU pinning"
    return ncpu - 1, 0, f"servers pinned to CPU {ncpu - 1}, load generators to CPU 0"


class OtherLoad:
    """Other processes' CPU use over a window: the machine's user time (/proc/stat user + nice) less the user
    time of this process, its reaped children and the processes watched. In CPUs (1.0: one CPU busy)."""

    def __init__(self, pids=()):
        self.pids = list(pids)
        self.t0 = time.monotonic()
        self.mach0, self.ours0 = machine_user_s(), ours_user_s(self.pids)

    def cpus(self):
        elapsed = time.monotonic() - self.t0
        other = (machine_user_s() - self.mach0) - (ours_user_s(self.pids) - self.ours0)
        return max(0.0, other) / elapsed if elapsed > 0 else 0.0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def raise_nofile(want=None):
    """Raise this process's RLIMIT_NOFILE soft limit to want (default: the hard limit); children inherit it.
    Returns the (soft, hard) limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if want is None else min(want, hard) if hard != resource.RLIM_INFINITY else want
    if target != resource.RLIM_INFINITY and target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Smtpfault:
    """An smtpfault started by a benchmark: its listeners are read from --ports-file."""

    def __init__(self, binary, workdir, args, cpu=None, name="smtpfault"):
        self.binary, self.workdir, self.args, self.cpu, self.name = binary, workdir, list(args), cpu, name
        self.proc = None
        self.ports = {}
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")

    def start(self, timeout=10):
        ports = os.path.join(self.workdir, f"{self.name}.ports.json")
        cmd = [self.binary, "--ports-file", ports] + self.args
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(pin(cmd, self.cpu), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        end = time.monotonic() + timeout
        while not os.path.exists(ports):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise BenchError(f"{self.name} did not start: {self.stderr_text()[-500:]}")
            time.sleep(0.02)
        with open(ports) as f:
            self.ports = json.load(f)
        return self

    def port(self, listener):
        return int(self.ports[listener]["port"])

    def admin(self, cmd, **args):
        """One request to the admin socket ({"cmd": cmd, ...} as one JSON line); its reply as a dict."""
        a = self.ports["admin"]
        return admin_request(a["host"], int(a["port"]), dict(args, cmd=cmd))

    def stats(self):
        return self.admin("stats")

    def stderr_text(self):
        return read_text(self.stderr_path).strip()

    def stop(self):
        return stop(self.proc, self.name)


def read_text(path):
    """A file's text, bytes not in UTF-8 replaced; "" when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def admin_request(host, port, request, timeout=10):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data)
    if not reply.get("ok"):
        raise BenchError(f"admin {request.get('cmd')}: {reply}")
    return reply


def smtp_transaction(port, host="127.0.0.1", timeout=10, helo="bench.invalid"):
    """One plain SMTP session with one message (smtplib); returns its reply text. For probes and latency."""
    with smtplib.SMTP(host, port, timeout=timeout) as s:
        s.ehlo(helo)
        s.mail("bench@example.com")
        s.rcpt("sink@example.com")
        code, text = s.data(b"Subject: bench probe\r\n\r\nprobe\r\n")
    if code != 250:
        raise BenchError(f"probe: unexpected reply {code} {text!r}")
    return text
