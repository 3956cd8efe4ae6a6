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


def smtp_source(port, count, cpu, sessions, size, reuse, timeout):
    """count 1-message transactions of size bytes through Postfix's smtp-source, sessions at a time (reuse:
    keep each connection, -d; else one session per message); messages per second. A failure raises."""
    cmd = [find_tool("smtp-source"), "-s", str(sessions), "-m", str(count), "-l", str(size), "-f",
           "bench@example.com", "-t", "sink@example.com", "-M", "bench.invalid", *(["-d"] if reuse else []),
           f"127.0.0.1:{port}"]
    t0 = time.monotonic()
    r = subprocess.run(pin(cmd, cpu), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=timeout)
    elapsed = time.monotonic() - t0
    if r.returncode != 0 or r.stderr.strip():
        raise BenchError(f"smtp-source to {port} failed ({r.returncode}): {r.stderr.decode(errors='replace')[:300]}")
    return count / elapsed


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


def cpu_times():
    """{cpu index: (busy ticks, total ticks)} from /proc/stat; idle and iowait count as not busy."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name = line.split(maxsplit=1)[0]
            if not name.startswith("cpu") or name == "cpu":
                continue
            v = [int(x) for x in line.split()[1:9]]
            total = sum(v)
            out[int(name[3:])] = (total - v[3] - v[4], total)
    return out


class OtherLoad:
    """Other processes' CPU use over a window: the machine's user time (/proc/stat user + nice) less the user
    time of this process, its reaped children and the processes watched. In CPUs (1.0: one CPU busy).
    Also how busy each CPU was, whoever used it (busy(cpu): 0 to 1)."""

    def __init__(self, pids=()):
        self.pids = list(pids)
        self.t0 = time.monotonic()
        self.mach0, self.ours0 = machine_user_s(), ours_user_s(self.pids)
        self.cpu0 = cpu_times()
        self.cpu1 = None

    def cpus(self):
        elapsed = time.monotonic() - self.t0
        other = (machine_user_s() - self.mach0) - (ours_user_s(self.pids) - self.ours0)
        self.cpu1 = cpu_times()
        return max(0.0, other) / elapsed if elapsed > 0 else 0.0

    def busy(self, cpu):
        """How busy CPU cpu was between the start and the last cpus() call; None if unknown."""
        if cpu is None or self.cpu1 is None or cpu not in self.cpu0 or cpu not in self.cpu1:
            return None
        busy = self.cpu1[cpu][0] - self.cpu0[cpu][0]
        total = self.cpu1[cpu][1] - self.cpu0[cpu][1]
        return busy / total if total > 0 else None


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


def spawn_with_ports(cmd, cpu, stderr_path, ports_path, name, timeout=10):
    """Start cmd (pinned to cpu) and wait until it writes ports_path (JSON); returns (proc, ports)."""
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(pin(cmd, cpu), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    end = time.monotonic() + timeout
    while not os.path.exists(ports_path):
        if proc.poll() is not None or time.monotonic() > end:
            if proc.poll() is None:
                stop(proc, name)
            raise BenchError(f"{name} did not start: {read_text(stderr_path).strip()[-500:]}")
        time.sleep(0.02)
    with open(ports_path) as f:
        return proc, json.load(f)


class Smtpfault:
    """An smtpfault started by a benchmark: its listeners are read from --ports-file."""

    def __init__(self, binary, workdir, args, cpu=None, name="smtpfault", wrapper=()):
        self.binary, self.workdir, self.args, self.cpu, self.name = binary, workdir, list(args), cpu, name
        self.wrapper = list(wrapper)  # a command the server runs under (valgrind ...)
        self.proc = None
        self.ports = {}
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")

    def start(self, timeout=10):
        ports = os.path.join(self.workdir, f"{self.name}.ports.json")
        self.proc, self.ports = spawn_with_ports(self.wrapper + [self.binary, "--ports-file", ports] + self.args, self.cpu,
                                                 self.stderr_path, ports, self.name, timeout)
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


def json_line(host, port, request=None, timeout=10):
    """Connect, send request as one JSON line (if any), read one JSON line back and return it."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        if request is not None:
            s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def admin_request(host, port, request, timeout=10):
    reply = json_line(host, port, request, timeout)
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


# -- what the comparative benchmarks (bench.py, tls_bench.py) share --------------------------------------------

def add_comparison_args(ap, scenarios, budget, client):
    """The command-line options of a benchmark that compares smtpfault with another server."""
    ap.add_argument("smtpfault", help="path to the smtpfault binary")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout)")
    ap.add_argument("--repeats", type=int, default=3, help="measured runs per server and scenario (default 3)")
    ap.add_argument("--target-seconds", type=float, default=1.5,
                    help="length of a measured run on the faster server (default 1.5)")
    ap.add_argument("--budget-seconds", type=float, default=budget,
                    help=f"give up after this long (default {budget:g})")
    ap.add_argument("--scenarios", help="comma-separated scenario keys (default: all): " +
                    ", ".join(s[0] for s in scenarios))
    ap.add_argument("--retries", type=int, default=2,
                    help="run a measured run again, up to this many times, when other processes used more "
                         "than --max-other-load CPUs meanwhile (default 2)")
    ap.add_argument("--max-other-load", type=float, default=0.1,
                    help="other processes' user CPU time, in CPUs, that disturbs a run (default 0.1)")
    ap.add_argument("--no-pin", action="store_true",
                    help=f"do not pin the servers to the last CPU and {client} to the first")


def checked_binary(path):
    binary = os.path.abspath(path)
    if not os.access(binary, os.X_OK):
        raise BenchError(f"{path} is not an executable (build it first: make build)")
    return binary


def pick_scenarios(scenarios, keys_text):
    """The scenarios named in keys_text (comma-separated keys; all when empty), in their own order."""
    if not keys_text:
        return scenarios
    keys = keys_text.split(",")
    unknown = [k for k in keys if k not in {s[0] for s in scenarios}]
    if unknown:
        raise BenchError(f"unknown scenario {', '.join(unknown)}")
    return [s for s in scenarios if s[0] in keys]


class Retrying:
    """Measured runs that other processes disturbed are run again, within a quarter of the time budget."""

    def __init__(self, args):
        self.args = args
        self.disturbed = 0  # measured runs kept although other processes used the CPU meanwhile
        self.retried = 0
        self.retry_seconds = 0.0
        self.max_other = 0.0

    def retrying(self, name, run_once):
        """run_once() returns a dict with "other_load_cpus" and "seconds"; returns the run kept."""
        for attempt in range(self.args.retries + 1):
            run = run_once()
            if run["other_load_cpus"] <= self.args.max_other_load:
                break
            if attempt < self.args.retries and self.retry_seconds + run["seconds"] < self.args.budget_seconds / 4:
                self.retried += 1
                self.retry_seconds += run["seconds"]
                log(f"{name}: other processes used {run['other_load_cpus']:.2f} CPUs during the run: again")
                continue
            self.disturbed += 1
            break
        self.max_other = max(self.max_other, run["other_load_cpus"])
        return run


def write_json(path, doc):
    """doc as indented JSON to path ('-': stdout)."""
    text = json.dumps(doc, indent=2) + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w") as f:
            f.write(text)


def run_main(main, name):
    """Run a benchmark's main(): SIGTERM unwinds through its finally blocks (stopping what it started);
    a BenchError is reported on one line and exits 1."""
    global NAME
    NAME = name
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"FAILED: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
