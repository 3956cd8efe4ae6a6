#!/usr/bin/python3
"""Throughput of smtpfault against Postfix's smtp-sink, both driven by Postfix's smtp-source over loopback.

Usage: bench.py SMTPFAULT [--json FILE] [--repeats N] [--target-seconds S] [--scenarios K1,K2] [--no-pin] ...

One run starts one smtpfault and one smtp-sink and keeps both for every scenario:
  * before the first scenario of each message size, a "store fill" run sends each server enough messages
    to fill smtpfault's in-memory store, then a "turnover" run as many again, so that the measured runs all
    see the same steady state (store full, each new message evicting the oldest and reusing its memory);
    both rates are reported on separate lines, since a fill costs smtpfault fresh memory (page faults)
    that later messages do not pay;
  * a warm-up run against each server, repeated with more messages until it lasts long enough, whose
    rate sets the message count of the measured runs (about --target-seconds on the faster server);
  * --repeats measured runs per server, interleaved A B, B A, A B... so that drift hits both alike;
    each is timed with a monotonic clock around the smtp-source process; the median is reported.
A run counts only if smtp-source exits 0 with nothing on stderr (it exits non-zero on any reply other than
2xx, 354 after DATA, or on a lost connection) AND the server confirms it accepted exactly the messages sent:
  * smtpfault: after every run a probe message (smtplib) reads the store sequence number from the
    "250 2.0.0 Ok: queued as <id>" reply; two consecutive probes differ by the run's count plus one;
  * smtp-sink: its -c running counter ("mesg=N") must have grown by the run's count.
A run during which other processes used noticeable CPU time (user time not ours, from /proc/stat) is run
again, up to --retries times; runs still disturbed are counted in the report.
Only the standard library of Debian's python3 is used. Every process started here is stopped by its PID.
"""

import argparse
import json
import math
import os
import re
import resource
import shutil
import smtplib
import statistics
import subprocess
import tempfile
import time

from benchlib import (BenchError, run_main, Retrying, add_comparison_args, checked_binary, cpu_ns, find_tool, fmt_rate,
                      free_port, human_bytes, log, machine_user_s, ours_user_s, parse_size, pick_scenarios, pin,
                      print_table, proc_status, read_text, round_count, stop, wait_banner, wakeups, write_json)

SENDER = "bench@example.com"
RECIPIENT = "sink@example.com"
HELO_NAME = "bench.invalid"
KIB = 1024
HEADER_BYTES = 200  # smtp-source adds From, To, Date and Message-Id headers to the -l payload

# (key, label, message bytes, sessions, reuse connection)
SCENARIOS = [
    ("1k-s1-reuse", "1 KiB, 1 session, reused connection", 1 * KIB, 1, True),
    ("1k-s50-reuse", "1 KiB, 50 sessions, reused connections", 1 * KIB, 50, True),
    ("1k-s1-conn", "1 KiB, 1 session, connection per message", 1 * KIB, 1, False),
    ("1k-s50-conn", "1 KiB, 50 sessions, connection per message", 1 * KIB, 50, False),
    ("100k-s1-reuse", "100 KiB, 1 session, reused connection", 100 * KIB, 1, True),
    ("100k-s50-reuse", "100 KiB, 50 sessions, reused connections", 100 * KIB, 50, True),
]

RUN_TIMEOUT_S = 60  # one smtp-source run; a hang is a failure, not a slow result


class Smtpfault:
    name = "smtpfault"
    key = "smtpfault"  # in the JSON output

    def __init__(self, binary, workdir, store_max_messages, store_max_bytes, cpu):
        self.binary = binary
        self.workdir = workdir
        self.store_max_messages = store_max_messages
        self.store_max_bytes = store_max_bytes
        self.cpu = cpu
        self.proc = None
        self.port = None
        self.seq = None
        self.stderr_path = os.path.join(workdir, "smtpfault.stderr")

    def start(self):
        ports = os.path.join(self.workdir, "ports.json")
        # -q: warnings only, no per-command transcript (smtp-sink does not log either).
        cmd = [self.binary, "--smtp", "127.0.0.1:0", "--ports-file", ports, "-q",
               "--store-max-messages", str(self.store_max_messages),
               "--store-max-bytes", str(self.store_max_bytes)]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(pin(cmd, self.cpu), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        end = time.monotonic() + 5
        while not os.path.exists(ports):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise BenchError(f"smtpfault did not start: {self.stderr_text()}")
            time.sleep(0.02)
        with open(ports) as f:
            self.port = int(json.load(f)["smtp"]["port"])
        if not wait_banner(self.port, self.proc):
            raise BenchError(f"smtpfault does not greet on port {self.port}: {self.stderr_text()}")
        self.seq = self.probe()

    def probe(self):
        """Send one message; return the store sequence number from 'queued as <id>'.

        Ids are a 12-hex-digit prefix for the run, then the sequence number in hex (server/store.c); a
        sequence number is given to a message only once the server has accepted it."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.helo(HELO_NAME)
            s.mail(SENDER)
            s.rcpt(RECIPIENT)
            code, text = s.data(b"Subject: bench probe\r\n\r\nprobe\r\n")
        m = re.search(rb"queued as ([0-9A-F]{12})([0-9A-F]+)", text)
        if code != 250 or m is None:
            raise BenchError(f"smtpfault probe: unexpected reply {code} {text!r}")
        return int(m.group(2), 16)

    def accepted(self, expected):
        seq = self.probe()
        n = seq - self.seq - 1
        self.seq = seq
        return n

    def stderr_text(self):
        return read_text(self.stderr_path).strip()

    def stop(self):
        """Peak and current RSS in kB (read just before SIGTERM), and the exit status."""
        hwm = proc_status(self.proc.pid, "VmHWM")
        rss = proc_status(self.proc.pid, "VmRSS")
        return hwm, rss, stop(self.proc, self.name)


class Sink:
    name = "smtp-sink"
    key = "smtp_sink"
    COUNTER = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")

    def __init__(self, workdir, cpu, backlog):
        self.workdir = workdir
        self.cpu = cpu
        self.backlog = backlog
        self.proc = None
        self.port = None
        self.mesg = 0
        self.out_path = os.path.join(workdir, "smtp-sink.out")

    def start(self):
        tool = find_tool("smtp-sink")
        for _ in range(5):
            self.port = free_port()
            # -c: running counters on stdout, checked after every run; -u: required when run as root.
            # Other features are left at their defaults: smtp-source says HELO, so no ESMTP extension
            # (PIPELINING, 8BITMIME...) is used with either server.
            cmd = [tool, "-c"]
            if os.geteuid() == 0:
                cmd += ["-u", "nobody"]
            cmd += [f"127.0.0.1:{self.port}", str(self.backlog)]
            with open(self.out_path, "wb") as out:
                self.proc = subprocess.Popen(pin(cmd, self.cpu), stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=subprocess.STDOUT)
            if wait_banner(self.port, self.proc):
                self.mesg = self.counter()
                return
            stop(self.proc, self.name)  # the port was taken meanwhile, most likely: try another
        raise BenchError(f"smtp-sink did not start: {self.out_text()[-500:]}")

    def out_text(self):
        return read_text(self.out_path)

    def counter(self):
        with open(self.out_path, "rb") as f:
            data = f.read()
        last = None
        for last in self.COUNTER.finditer(data):
            pass
        return int(last.group(3)) if last else 0

    def accepted(self, expected):
        # The sink writes its counter when it reads ".", before its reply reaches smtp-source; the wait
        # only covers a slow scheduler.
        end = time.monotonic() + 2
        while True:
            mesg = self.counter()
            if mesg - self.mesg >= expected or time.monotonic() > end:
                break
            time.sleep(0.02)
        n = mesg - self.mesg
        self.mesg = mesg
        return n

    def stop(self):
        hwm = proc_status(self.proc.pid, "VmHWM")
        stop(self.proc, self.name)
        return hwm


class Bench(Retrying):
    def __init__(self, args, servers, client_cpu, deadline):
        super().__init__(args)
        self.servers = servers
        self.client_cpu = client_cpu
        self.deadline = deadline

    def pids(self):
        return [s.proc.pid for s in self.servers]

    def run_source(self, server, size, sessions, reuse, count):
        """One smtp-source run against server; raises BenchError unless every message was accepted."""
        if time.monotonic() > self.deadline:
            raise BenchError(f"time budget of {self.args.budget_seconds:.0f} s exhausted (--budget-seconds)")
        cmd = [find_tool("smtp-source"), "-s", str(sessions), "-m", str(count), "-l", str(size),
               "-f", SENDER, "-t", RECIPIENT, "-M", HELO_NAME]
        if reuse:
            cmd.append("-d")  # next message on the same connection; without -d: QUIT, connect again
        cmd.append(f"127.0.0.1:{server.port}")
        cpu0, mach0, ours0 = cpu_ns(server.proc.pid), machine_user_s(), ours_user_s(self.pids())
        wake0, kids0 = wakeups(server.proc.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        try:
            r = subprocess.run(pin(cmd, self.client_cpu), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BenchError(f"smtp-source against {server.name} did not finish in {RUN_TIMEOUT_S} s")
        elapsed = time.monotonic() - t0
        cpu1, mach1, ours1 = cpu_ns(server.proc.pid), machine_user_s(), ours_user_s(self.pids())
        wake1, kids1 = wakeups(server.proc.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
        client_s = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        err = r.stderr.decode(errors="replace").strip()
        if r.returncode != 0 or err:
            raise BenchError(f"smtp-source against {server.name} failed (exit {r.returncode}): {err[:500]}")
        got = server.accepted(count)
        if got != count:
            raise BenchError(f"{server.name} accepted {got} messages, smtp-source sent {count}")
        other = max(0.0, (mach1 - mach0) - (ours1 - ours0)) / elapsed
        return {"seconds": round(elapsed, 4), "rate": round(count / elapsed, 1),
                "server_cpu_us_per_msg": None if None in (cpu0, cpu1) else round((cpu1 - cpu0) / 1000 / count, 2),
                "server_busy": None if None in (cpu0, cpu1) else round((cpu1 - cpu0) / 1e9 / elapsed, 3),
                "server_wakeups_per_msg": None if None in (wake0, wake1) else round((wake1 - wake0) / count, 3),
                "client_cpu_us_per_msg": round(client_s * 1e6 / count, 2),
                "client_busy": round(client_s / elapsed, 3),
                "other_load_cpus": round(other, 3)}

    def measure(self, server, size, sessions, reuse, count):
        """A measured run, run again when other processes disturbed it and time allows."""
        return self.retrying(server.name, lambda: self.run_source(server, size, sessions, reuse, count))

    def warm_up(self, size, sessions, reuse):
        """Warm-up runs, longer until one lasts 0.5 s; returns the message count for the measured runs."""
        rates = []
        for srv in self.servers:
            count = max(200 if size <= 4 * KIB else 100, 4 * sessions)
            for _ in range(4):
                run = self.run_source(srv, size, sessions, reuse, count)
                if run["seconds"] >= 0.5:
                    break
                count = int(count * min(8.0, max(2.0, 0.6 / max(run["seconds"], 0.01))))
            rates.append(run["rate"])
        return round_count(max(rates) * self.args.target_seconds, 100, 500000)


def summary(runs):
    rates = [r["rate"] for r in runs]
    cpus = [r["server_cpu_us_per_msg"] for r in runs if r["server_cpu_us_per_msg"] is not None]

    def med(field):
        values = [r[field] for r in runs if r[field] is not None]
        return round(statistics.median(values), 3) if values else None

    return {"rate": round(statistics.median(rates), 1), "rate_min": min(rates), "rate_max": max(rates),
            "cpu_us_per_msg": round(statistics.median(cpus), 1) if cpus else None,
            "server_busy": med("server_busy"), "server_wakeups_per_msg": med("server_wakeups_per_msg"),
            "client_cpu_us_per_msg": med("client_cpu_us_per_msg"), "client_busy": med("client_busy")}


def main():
    ap = argparse.ArgumentParser(description="smtpfault vs smtp-sink throughput, driven by smtp-source.")
    add_comparison_args(ap, SCENARIOS, 170, "smtp-source")
    ap.add_argument("--store-max-messages", type=int, default=10000,
                    help="passed to smtpfault (default 10000, its default)")
    ap.add_argument("--store-max-bytes", type=parse_size, default=256 << 20,
                    help="passed to smtpfault (default 256M, its default)")
    ap.add_argument("--backlog", type=int, default=511,
                    help="smtp-sink listen backlog (default 511, as smtpfault's in server/listener.h)")
    args = ap.parse_args()

    started = time.monotonic()
    binary = checked_binary(args.smtpfault)
    scenarios = pick_scenarios(SCENARIOS, args.scenarios)
    find_tool("smtp-sink")
    find_tool("smtp-source")

    ncpu = os.cpu_count() or 1
    pinned = not args.no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    server_cpu = ncpu - 1 if pinned else None
    client_cpu = 0 if pinned else None
    placement = (f"servers pinned to CPU {server_cpu}, smtp-source to CPU {client_cpu}" if pinned
                 else "no CPU pinning")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()

    workdir = tempfile.mkdtemp(prefix="smtpfault-bench-")
    sf = Smtpfault(binary, workdir, args.store_max_messages, args.store_max_bytes, server_cpu)
    sink = Sink(workdir, server_cpu, args.backlog)
    bench = Bench(args, [sf, sink], client_cpu, started + args.budget_seconds)
    results, fills = [], []
    hwm = rss = rc = sink_hwm = None
    try:
        sf.start()
        sink.start()
        log(f"smtpfault pid {sf.proc.pid} on 127.0.0.1:{sf.port}, smtp-sink pid {sink.proc.pid} on "
            f"127.0.0.1:{sink.port}; {placement}")
        filled = set()
        for key, label, size, sessions, reuse in scenarios:
            if size not in filled and args.store_max_messages > 0:
                # Fill smtpfault's store with messages of this size, 10% over its limits, and time it; then
                # turn the store over once more, untimed, so that the memory of the messages evicted has
                # been recycled by the allocator: the steady state that the measured runs then share.
                stored = size + HEADER_BYTES
                n = min(args.store_max_messages, math.ceil(args.store_max_bytes / stored))
                n = min(100000, math.ceil(n * 1.1))
                fill = {"message_bytes": size, "sessions": 50, "messages": n, "fill": {}, "turnover": {}}
                for phase in ("fill", "turnover"):
                    for srv in (sf, sink):
                        fill[phase][srv.key] = bench.run_source(srv, size, 50, True, n)
                fills.append(fill)
                filled.add(size)
                log(f"{human_bytes(size)} messages, {n} per run: store fill smtpfault "
                    f"{fmt_rate(fill['fill']['smtpfault']['rate'])}/s, smtp-sink "
                    f"{fmt_rate(fill['fill']['smtp_sink']['rate'])}/s; turnover smtpfault "
                    f"{fmt_rate(fill['turnover']['smtpfault']['rate'])}/s, smtp-sink "
                    f"{fmt_rate(fill['turnover']['smtp_sink']['rate'])}/s")
            count = bench.warm_up(size, sessions, reuse)
            runs = {sf.key: [], sink.key: []}
            for i in range(args.repeats):
                for srv in ((sf, sink) if i % 2 == 0 else (sink, sf)):  # ABBA: linear drift hits both alike
                    runs[srv.key].append(bench.measure(srv, size, sessions, reuse, count))
            res = {"key": key, "label": label, "message_bytes": size, "sessions": sessions,
                   "reuse_connection": reuse, "messages_per_run": count,
                   "smtpfault": summary(runs[sf.key]), "smtp_sink": summary(runs[sink.key])}
            res["ratio"] = round(res["smtpfault"]["rate"] / res["smtp_sink"]["rate"], 3)
            res["runs"] = runs
            results.append(res)
            log(f"{label}: {count} messages/run, smtpfault {fmt_rate(res['smtpfault']['rate'])}/s, smtp-sink "
                f"{fmt_rate(res['smtp_sink']['rate'])}/s, ratio {res['ratio']:.2f}")
    finally:
        if sf.proc is not None:
            hwm, rss, rc = sf.stop()
        if sink.proc is not None:
            sink_hwm = sink.stop()
        warnings = sf.stderr_text()
        shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        raise BenchError(f"smtpfault exited with status {rc} on SIGTERM: {warnings[-500:]}")
    elapsed = time.monotonic() - started

    # -- report --
    print()
    print(f"smtpfault vs smtp-sink, driven by smtp-source over 127.0.0.1; {ncpu} CPUs, {placement}")
    print(f"{version}")
    print(f"messages/s: median of {args.repeats} runs per server (min-max); ratio = smtpfault / smtp-sink "
          f"(above 1: smtpfault faster)")
    print("server us/msg: the server's CPU time (user + system) per message; client busy: smtp-source's CPU time"
          " / wall time (near 100%: the client, not the server, sets the pace); medians")
    print()
    headers = ["scenario", "msgs/run", "smtpfault/s", "(min-max)", "smtp-sink/s", "(min-max)", "ratio",
               "server us/msg: sf", "sink", "client busy: sf", "sink"]

    def cpu(v):
        return "-" if v is None else f"{v:.0f}"

    def pct(v):
        return "-" if v is None else f"{v * 100:.0f}%"

    print_table(headers, [
        [r["label"], str(r["messages_per_run"]),
         fmt_rate(r["smtpfault"]["rate"]), f"({r['smtpfault']['rate_min']:.0f}-{r['smtpfault']['rate_max']:.0f})",
         fmt_rate(r["smtp_sink"]["rate"]), f"({r['smtp_sink']['rate_min']:.0f}-{r['smtp_sink']['rate_max']:.0f})",
         f"{r['ratio']:.2f}", cpu(r["smtpfault"]["cpu_us_per_msg"]), cpu(r["smtp_sink"]["cpu_us_per_msg"]),
         pct(r["smtpfault"]["client_busy"]), pct(r["smtp_sink"]["client_busy"])]
        for r in results])
    if fills:
        print()
        print("store fill: one run each, 50 sessions, reused connections, before the scenarios of that size;"
              " first into smtpfault's empty store, then one more turnover")
        for f in fills:
            for phase in ("fill", "turnover"):
                a, b = f[phase]["smtpfault"], f[phase]["smtp_sink"]
                print(f"  {human_bytes(f['message_bytes'])} messages, {phase}: {f['messages']} messages, smtpfault "
                      f"{fmt_rate(a['rate'])}/s ({cpu(a['server_cpu_us_per_msg'])} us/msg), smtp-sink "
                      f"{fmt_rate(b['rate'])}/s ({cpu(b['server_cpu_us_per_msg'])} us/msg), ratio "
                      f"{a['rate'] / b['rate']:.2f}")
    print()
    if hwm and rss:
        print(f"smtpfault peak RSS (VmHWM): {hwm / 1024:.1f} MiB, {rss / 1024:.1f} MiB at the end"
              + (f"; smtp-sink peak RSS {sink_hwm / 1024:.1f} MiB" if sink_hwm else ""))
    print(f"smtpfault in-memory store: --store-max-messages {args.store_max_messages} --store-max-bytes "
          f"{args.store_max_bytes} ({human_bytes(args.store_max_bytes)}); full, evicting the oldest, during the scenarios")
    print(f"checks: smtp-source exit 0 and empty stderr on every run; per-run counts confirmed by both servers; "
          f"smtpfault exit {rc} on SIGTERM")
    quiet = bench.disturbed == 0
    print(f"other load: at most {bench.max_other:.2f} CPUs of other processes' user time in a measured run; "
          f"{bench.retried} run(s) repeated"
          + ("" if quiet else f"; {bench.disturbed} run(s) kept although disturbed: figures unreliable"))
    if warnings:
        print(f"smtpfault stderr:\n{warnings[-2000:]}")
    print(f"total time {elapsed:.0f} s")

    if args.json:
        doc = {"smtpfault_version": version, "cpus": ncpu, "pinned": pinned, "repeats": args.repeats,
               "store_max_messages": args.store_max_messages, "store_max_bytes": args.store_max_bytes,
               "smtpfault_vmhwm_kib": hwm, "smtpfault_vmrss_end_kib": rss, "smtp_sink_vmhwm_kib": sink_hwm,
               "smtpfault_exit": rc, "smtpfault_stderr": warnings, "runs_repeated": bench.retried,
               "runs_disturbed": bench.disturbed, "max_other_load_cpus": round(bench.max_other, 3),
               "elapsed_seconds": round(elapsed, 1), "store_fill": fills, "scenarios": results}
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    run_main(main, "bench")
