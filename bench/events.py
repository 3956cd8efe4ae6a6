#!/usr/bin/python3
"""Event stream benchmark (issue 17): does GET /api/v1/events keep up with a high session rate, and what does
one open stream cost SMTP, and the server's memory?

Usage: events.py SMTPFAULT [--sessions N] [--repeats N] [--instructions N] [--json FILE] [--no-pin]

One smtpfault (-q, no store directory), with Postfix's smtp-source opening one session per message (20 at a
time, 1 KiB messages). Runs are interleaved A B, B A, ... for --repeats rounds:
  A. nobody streams events;
  B. one HTTP client streams GET /api/v1/events, reading as fast as it can (a thread of this script), and
     counts the sessions it saw connect and close.
Each run must be accepted whole (the admin socket's accepted count). Reported: sessions/s for A and B
(medians), their ratio (the target: B at least 95 % of A), and whether B's stream saw every session (it must:
a reader that falls 16 MiB behind is disconnected). With --instructions N, also the server's instructions per
session with and without a stream, counted by valgrind's callgrind (user space only; unlike times, the same
on a loaded machine): runs of N and 2 N sessions each way, the difference divided by N, so that start-up and
shutdown cancel out. Then the cost of an open page: the server's VmRSS with
the page's connections open (the stream and an idle keep-alive connection), minus before, after a run of
sessions has gone through (target: under 1 MiB). Every process started here is stopped by its PID.
"""

import argparse
import glob
import os
import socket
import statistics
import tempfile
import threading
import time

from benchlib import (BenchError, Smtpfault, cpu_ns, cpu_plan, log, print_table, proc_status, run_main, smtp_source,
                      write_json)

SESSIONS_AT_ONCE, SIZE = 20, 1024
RUN_TIMEOUT_S = 300
TARGET_RATIO, TARGET_PAGE_KIB = 0.95, 1024


class Stream:
    """GET /api/v1/events on its own connection, read in a thread; counts connect and close events."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = b""
        while b": subscribed\n\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise BenchError(f"the event stream was refused: {head[:200]!r}")
            head += chunk
        self.connects = self.closes = self.bytes = 0
        self.closed = False
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        tail = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    break
                self.bytes += len(chunk)
                data = tail + chunk
                # Each event is one line; one that straddles two reads is counted once, from the joined tail.
                cut = data.rfind(b"\n") + 1
                done, tail = data[:cut], data[cut:]
                self.connects += done.count(b'"event":"connect"')
                self.closes += done.count(b'"event":"close"')
        except OSError:
            pass
        self.closed = True

    def close(self):
        self.sock.close()
        self.thread.join(10)


def run_source(port, count, cpu):
    """count sessions of one 1 KiB message each; sessions per second"""
    return smtp_source(port, count, cpu, SESSIONS_AT_ONCE, SIZE, False, RUN_TIMEOUT_S)


SERVER_ARGS = ["-q", "--smtp", "127.0.0.1:0", "--submission", "off", "--smtps", "off", "--no-tls", "--admin",
               "127.0.0.1:0", "--store-max-messages", "1000"]
VALGRIND_START_S = 60


def callgrind_instructions(binary, work, sessions, streamed, cpus):
    """The instructions (callgrind's Ir) one server run executes with sessions sessions, a stream open or not"""
    out = os.path.join(work, f"callgrind.{sessions}.{int(streamed)}.out")
    srv = Smtpfault(binary, work, SERVER_ARGS, cpus[0], name=f"cg{sessions}{int(streamed)}",
                    wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
    srv.start(VALGRIND_START_S)
    stream = None
    try:
        if streamed:
            stream = Stream(srv.ports["admin"]["host"], int(srv.ports["admin"]["port"]))
        smtp_source(srv.port("smtp"), sessions, cpus[1], 5, SIZE, False, RUN_TIMEOUT_S)
        if stream is not None:
            wait_for(lambda: stream.closes >= sessions or stream.closed, 60, "the stream's last events")
            if stream.closes != sessions:
                raise BenchError(f"the stream saw {stream.closes} of {sessions} sessions")
            stream.close()
    finally:
        srv.stop()
    for path in glob.glob(out + "*"):
        with open(path) as f:
            for line in f:
                if line.startswith("totals:"):
                    return int(line.split()[1])
    raise BenchError(f"no totals in {out}: {srv.stderr_text()[-300:]}")


def instructions_per_session(binary, work, n, cpus):
    """{"no stream": Ir per session, "one stream": ...}, from runs of n and 2 n sessions each"""
    result = {}
    for label, streamed in (("no stream", False), ("one stream", True)):
        small = callgrind_instructions(binary, work, n, streamed, cpus)
        large = callgrind_instructions(binary, work, 2 * n, streamed, cpus)
        result[label] = round((large - small) / n)
        log(f"callgrind, {label}: {large - small:,} instructions for {n} more sessions")
    return result


def wait_for(predicate, timeout, what):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("smtpfault")
    ap.add_argument("--sessions", type=int, default=20000, help="sessions per run (default 20,000)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of A B (default 3; 0 with --instructions: the counts alone)")
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the server and the load to CPUs")
    ap.add_argument("--instructions", type=int, default=0, metavar="N",
                    help="also count the server's instructions per session under callgrind (N and 2 N sessions)")
    args = ap.parse_args()
    server_cpu, client_cpu, plan = cpu_plan(args.no_pin)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # the stream's reader with the load, off the server's CPU
    log(plan)
    with tempfile.TemporaryDirectory(prefix="sf-events-") as work:
        if args.instructions > 0:
            per_session = instructions_per_session(os.path.abspath(args.smtpfault), work, args.instructions,
                                                   (server_cpu, client_cpu))
            if args.repeats == 0:  # the counts alone
                print(f"the server's instructions per session (callgrind, user space): "
                      f"{per_session['no stream']:,} without a stream, {per_session['one stream']:,} with one "
                      f"({per_session['no stream'] / per_session['one stream']:.3f})")
                return 0
        srv = Smtpfault(os.path.abspath(args.smtpfault), work, SERVER_ARGS, server_cpu).start()
        host, aport = srv.ports["admin"]["host"], int(srv.ports["admin"]["port"])
        rates, cpu = {"A": [], "B": []}, {"A": [], "B": []}
        seen = []
        try:
            accepted = 0
            for r in range(args.repeats):
                for kind in ("AB" if r % 2 == 0 else "BA"):
                    stream = Stream(host, aport) if kind == "B" else None
                    cpu0 = cpu_ns(srv.proc.pid)
                    rates[kind].append(run_source(srv.port("smtp"), args.sessions, client_cpu))
                    accepted += args.sessions
                    got = srv.stats()["messages"]["accepted"]
                    if got != accepted:
                        raise BenchError(f"{got} messages accepted, {accepted} sent")
                    if stream is not None:
                        wait_for(lambda: stream.closes >= args.sessions or stream.closed, 60, "the stream's last events")
                    cpu[kind].append((cpu_ns(srv.proc.pid) - cpu0) / 1000 / args.sessions)
                    if stream is not None:
                        seen.append((stream.connects, stream.closes, stream.closed))
                        stream.close()
                    log(f"run {kind}: {rates[kind][-1]:,.0f} sessions/s, {cpu[kind][-1]:.1f} µs of server CPU each")
            # The cost of an open page: its event stream and one idle keep-alive connection (its API calls).
            wait_for(lambda: srv.stats()["sessions"]["live"] == 0, 30, "the sessions to end")
            before = proc_status(srv.proc.pid, "VmRSS")
            stream = Stream(host, aport)
            idle = socket.create_connection((host, aport))
            idle.sendall(f"GET /api/v1/stats HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            run_source(srv.port("smtp"), 2000, client_cpu)
            wait_for(lambda: stream.closes >= 2000, 60, "the page's events")
            page_kib = proc_status(srv.proc.pid, "VmRSS") - before
            idle.close()
            stream.close()
        finally:
            srv.stop()
    a, b = statistics.median(rates["A"]), statistics.median(rates["B"])
    ca, cb = statistics.median(cpu["A"]), statistics.median(cpu["B"])
    # Each round's A and B ran back to back: the median of their ratios is steadier than the ratio of medians
    # when the machine's speed drifts between rounds.
    pair_cpu = statistics.median(x / y for x, y in zip(cpu["A"], cpu["B"]))
    every = all(c == args.sessions and e == args.sessions and not closed for c, e, closed in seen)
    result = {"sessions_per_run": args.sessions, "repeats": args.repeats, "cpu": plan,
              "sessions_per_s": {"no stream": round(a), "one stream": round(b)}, "ratio": round(b / a, 3),
              "server_cpu_us_per_session": {"no stream": round(ca, 1), "one stream": round(cb, 1)},
              "cpu_ratio": round(ca / cb, 3), "cpu_ratio_median_of_rounds": round(pair_cpu, 3),
              "stream_saw_every_session": every, "page_rss_kib": page_kib,
              "targets": {"ratio_at_least": TARGET_RATIO, "page_kib_under": TARGET_PAGE_KIB}}
    if args.instructions > 0:
        result["instructions_per_session"] = per_session
        result["instructions_ratio"] = round(per_session["no stream"] / per_session["one stream"], 3)
    print(f"\nsmtp-source -s {SESSIONS_AT_ONCE} -l {SIZE}, one session per message, {args.sessions} a run, "
          f"median of {args.repeats}:")
    print_table(["events", "sessions/s", "server CPU per session"],
                [[k, f"{v:,}", f"{result['server_cpu_us_per_session'][k]} µs"]
                 for k, v in result["sessions_per_s"].items()])
    print(f"with a stream / without: {result['ratio']} in sessions/s, {result['cpu_ratio']} in the server's CPU "
          f"per session (target at least {TARGET_RATIO}), {result['cpu_ratio_median_of_rounds']} as the median of the "
          f"rounds' own ratios; the stream saw every session: {every}")
    print(f"an open page (its stream and a keep-alive connection) after 2,000 sessions: {page_kib} KiB of "
          f"VmRSS (target under {TARGET_PAGE_KIB})")
    if args.instructions > 0:
        print(f"the server's instructions per session (callgrind, user space): {per_session['no stream']:,} without "
              f"a stream, {per_session['one stream']:,} with one ({result['instructions_ratio']})")
    if args.json:
        write_json(args.json, result)
    return 0 if every else 1


if __name__ == "__main__":
    run_main(main, "events")
