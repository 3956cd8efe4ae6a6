#!/usr/bin/python3
"""Scopes benchmark (issue 15): what a scope costs to create, end and keep, and whether its traffic is as
fast as the server's own listeners'.

Usage: scopes.py SMTPFAULT [--cycles N] [--idle N] [--messages N] [--repeats N] [--json FILE] [--no-pin]

One smtpfault (-q, admin socket, the three listeners) and, as the peer every figure is a ratio against,
Postfix's smtp-sink; Postfix's smtp-source drives the SMTP traffic. Phases:
  1. create/end: --cycles (default 2,000) scope.create (all three listeners) then scope.delete on one admin
     connection, each request timed from its send to its answer (what a test waits for); median, p99 and
     max are reported for both, against the target of 5 ms. A ping on the same connection is the floor: an
     admin round trip that does nothing.
  2. idle cost: --idle (default 200) kept scopes created; the server's VmRSS and open descriptors before
     and after, divided by the count, are the cost of an idle scope (target: under 100 KiB). They are
     deleted again, and the RSS left is reported.
  3. traffic: smtp-source sends --messages 1 KiB messages over 20 sessions, reusing connections, to the
     server's own listener, to a scope's listener and to smtp-sink, interleaved A B C, C B A, ... for
     --repeats rounds; each run must be accepted whole (the admin socket's accepted count, smtp-sink's -c
     counter). The medians' ratio scope/own is the target (about 1.0); both are also given against
     smtp-sink.
Only Debian's python3 standard library is used. Every process started here is stopped by its PID.
"""

import argparse
import os
import re
import socket
import json
import statistics
import subprocess
import tempfile
import time

from benchlib import (BenchError, Smtpfault, cpu_plan, find_tool, free_port, log, pin, print_table, proc_status,
                      raise_nofile, read_text, run_main, smtp_source, stop, wait_banner, write_json)

TARGET_CREATE_MS, TARGET_IDLE_KIB = 5.0, 100.0
SESSIONS, SIZE = 20, 1024
RUN_TIMEOUT_S = 120


class Admin:
    """One admin connection kept open (scopes belong to it), requests timed one at a time."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.reader = self.sock.makefile("rb")

    def timed(self, request):
        t0 = time.perf_counter()
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(self.reader.readline())
        elapsed = (time.perf_counter() - t0) * 1000
        if not reply.get("ok"):
            raise BenchError(f"admin {request['cmd']}: {reply}")
        return reply, elapsed

    def __call__(self, cmd, **args):
        return self.timed(dict(args, cmd=cmd))[0]

    def close(self):
        self.reader.close()
        self.sock.close()


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def ms_summary(values):
    return {"median_ms": round(statistics.median(values), 3), "p99_ms": round(pct(values, 99), 3),
            "max_ms": round(max(values), 3)}


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def create_delete(admin, cycles):
    creates, deletes, pings = [], [], []
    for _ in range(cycles):
        reply, ms = admin.timed({"cmd": "scope.create"})
        creates.append(ms)
        deletes.append(admin.timed({"cmd": "scope.delete", "scope": reply["scope"]})[1])
        pings.append(admin.timed({"cmd": "ping"})[1])
    return {"create": ms_summary(creates), "delete": ms_summary(deletes), "ping": ms_summary(pings)}


def idle_cost(server, admin, count):
    pid = server.proc.pid
    admin("scope.list")  # the admin connection's own buffers are in the baseline
    time.sleep(0.2)
    rss0, fds0 = proc_status(pid, "VmRSS"), open_fds(pid)
    ids = [admin("scope.create", keep=True)["scope"] for _ in range(count)]
    time.sleep(0.2)
    rss1, fds1 = proc_status(pid, "VmRSS"), open_fds(pid)
    for sid in ids:
        admin("scope.delete", scope=sid)
    time.sleep(0.2)
    rss2 = proc_status(pid, "VmRSS")
    return {"scopes": count, "rss_kib_per_scope": round((rss1 - rss0) / count, 2),
            "fds_per_scope": round((fds1 - fds0) / count, 2), "rss_kib_before": rss0, "rss_kib_with": rss1,
            "rss_kib_after_delete": rss2}


class Sink:
    name = "smtp-sink"

    def __init__(self, workdir, cpu):
        self.port = free_port()
        self.counter = os.path.join(workdir, "sink.out")
        # -c: a running count of messages on stdout (mesg=N), which confirms each run was accepted whole.
        cmd = [find_tool("smtp-sink"), "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1024"]
        self.out = open(self.counter, "wb")
        self.proc = subprocess.Popen(pin(cmd, cpu), stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        if not wait_banner(self.port, self.proc):
            raise BenchError(f"smtp-sink did not start: {read_text(self.counter)[-300:]}")

    def accepted(self):
        found = re.findall(r"mesg=(\d+)", read_text(self.counter))
        return int(found[-1]) if found else 0

    def stop(self):
        stop(self.proc, self.name)
        self.out.close()


def source_run(port, count, cpu):
    return smtp_source(port, count, cpu, SESSIONS, SIZE, True, RUN_TIMEOUT_S)


def traffic(server, admin, sink, messages, repeats, client_cpu):
    scope = admin("scope.create", listeners=["smtp"], keep=True)
    targets = {
        "own": (server.port("smtp"), lambda: admin("stats")["messages"]["accepted"]),
        "scope": (scope["listeners"]["smtp"]["port"], lambda: admin("stats", scope=scope["scope"])["messages"]["accepted"]),
        "smtp-sink": (sink.port, sink.accepted),
    }
    rates = {k: [] for k in targets}
    order = list(targets)
    source_run(targets["own"][0], 500, client_cpu)  # warm-up
    source_run(targets["scope"][0], 500, client_cpu)
    for i in range(repeats):
        for key in (order if i % 2 == 0 else order[::-1]):
            port, accepted = targets[key]
            before = accepted()
            rates[key].append(source_run(port, messages, client_cpu))
            time.sleep(0.3 if key == "smtp-sink" else 0)  # the sink's counter is written as it reads "."
            got = accepted() - before
            if got != messages:
                raise BenchError(f"{key} accepted {got} of {messages} messages")
    admin("scope.delete", scope=scope["scope"])
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"messages_per_run": messages, "repeats": repeats,
            "rate_per_s": {k: round(v, 1) for k, v in med.items()},
            "scope_vs_own": round(med["scope"] / med["own"], 3),
            "own_vs_sink": round(med["own"] / med["smtp-sink"], 3),
            "scope_vs_sink": round(med["scope"] / med["smtp-sink"], 3)}


def main():
    ap = argparse.ArgumentParser(description="What a scope costs, and its traffic against the server's own.")
    ap.add_argument("smtpfault")
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--no-pin", action="store_true")
    args = ap.parse_args()
    raise_nofile()
    server_cpu, client_cpu, _pinned = cpu_plan(args.no_pin)
    with tempfile.TemporaryDirectory(prefix="smtpfault-scopes-") as work:
        server = Smtpfault(args.smtpfault, work, ["--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0",
                                                 "--smtps", "127.0.0.1:0", "--admin", "127.0.0.1:0", "-q"],
                           server_cpu).start()
        sink = None
        try:
            sink = Sink(work, server_cpu)
            admin = Admin(server.ports["admin"]["host"], int(server.ports["admin"]["port"]))
            log(f"create/end: {args.cycles} cycles")
            cycles = create_delete(admin, args.cycles)
            log(f"idle cost: {args.idle} kept scopes")
            idle = idle_cost(server, admin, args.idle)
            log(f"traffic: {args.repeats} x {args.messages} messages to each of own, scope, smtp-sink")
            flow = traffic(server, admin, sink, args.messages, args.repeats, client_cpu)
            admin.close()
        finally:
            if sink is not None:
                sink.stop()
            server.stop()
    print("\nscope create and delete, one admin connection, each timed send to answer:")
    print_table(["request", "median ms", "p99 ms", "max ms"],
                [[k, str(v["median_ms"]), str(v["p99_ms"]), str(v["max_ms"])] for k, v in cycles.items()])
    print(f"target: create under {TARGET_CREATE_MS} ms: "
          f"{'met' if cycles['create']['p99_ms'] < TARGET_CREATE_MS else 'MISSED'} (p99 {cycles['create']['p99_ms']} ms)")
    print(f"\n{idle['scopes']} idle scopes: {idle['rss_kib_per_scope']} KiB of RSS and {idle['fds_per_scope']} "
          f"descriptors each (RSS {idle['rss_kib_before']} -> {idle['rss_kib_with']} KiB, "
          f"{idle['rss_kib_after_delete']} KiB after deleting them); target under {TARGET_IDLE_KIB} KiB: "
          f"{'met' if idle['rss_kib_per_scope'] < TARGET_IDLE_KIB else 'MISSED'}")
    print(f"\ntraffic, smtp-source -s {SESSIONS} -l {SIZE} -d, {flow['messages_per_run']} messages a run, median of "
          f"{flow['repeats']}:")
    print_table(["target", "messages/s"], [[k, str(v)] for k, v in flow["rate_per_s"].items()])
    print(f"scope / own listener: {flow['scope_vs_own']} (target about 1.0); own / smtp-sink: "
          f"{flow['own_vs_sink']}; scope / smtp-sink: {flow['scope_vs_sink']}")
    if args.json:
        write_json(args.json, {"cycles": cycles, "idle": idle, "traffic": flow})


if __name__ == "__main__":
    run_main(main, "scopes")
