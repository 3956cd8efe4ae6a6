#!/usr/bin/python3
"""Load benchmark (issue 8): many idle connections, slowloris clients, and a normal client's latency.

Usage: load.py SMTPFAULT [--idle N] [--slow N] [--tls N] [--slow-seconds S] [--probes N] [--idle-timeout S]
               [--json FILE] [--no-pin] [--budget-seconds S]

One smtpfault (plain SMTP with STARTTLS, implicit TLS, admin socket, -q) and one holder process (this script
run as `load.py _hold`, one selector loop) that opens and keeps the connections; the normal client is this
process, with smtplib. RLIMIT_NOFILE is raised to its hard limit first, and both children inherit it; when
the limit is too low for the connections asked for, their number is cut down and the report says so.
Phases, in order:
  1. latency of an idle server: --probes transactions spread evenly over --slow-seconds (so that both
     latency phases see the same pauses, and the same wake-up costs), each a new plain connection with
     EHLO, MAIL, RCPT, DATA, a short message and QUIT (smtplib), timed from connect to the 221;
  2. --idle plain connections (default 10,000) are opened and left idle after their 220; smtpfault's RSS
     (VmRSS in /proc/PID/status) before and after, divided by the count, is the memory of an idle
     connection (the admin socket's sessions.live confirms they are all open);
  3. --tls implicit-TLS connections (default 1,000) are opened (TLS 1.3 handshake, 220 read) and left idle:
     the RSS they add, divided by their count, is the memory of a TLS connection beyond a plain one's
     baseline; they are closed again, and the RSS left is reported;
  4. --slow slowloris clients (default 1,000) connect and send "NOOP\\r\\n" one byte per second each, without
     end, reading the replies; after a short warm-up, --probes transactions spread over --slow-seconds
     measure the normal client's latency again, with the idle connections still open;
  5. the holder checks that no idle or slow connection was closed by the server (--idle-timeout, default
     900 s, is longer than the run) and the admin socket's counts are checked;
  6. every connection is closed and the idle server's latency is measured again: the two idle phases
     bracket the loaded one, and the ratio is taken against their mean. Then everything is stopped.
Targets: latency under load within 2x of the idle server's (median and 99th percentile are compared), under
4 KiB of RSS per idle plain connection, under 48 KiB per TLS connection beyond the baseline. Other processes'
CPU use is measured during the latency phases, as bench.py does, and reported.
Only Debian's python3 standard library is used. Every process started here is stopped by its PID.
"""

import argparse
import json
import os
import shutil
import selectors
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import smtpgen
from benchlib import (BenchError, OtherLoad, Smtpfault, cpu_ns, cpu_plan, loadavg, log, pin, proc_status,
                      raise_nofile, read_text, run_main, smtp_transaction, stop, write_json)

HERE = os.path.dirname(os.path.abspath(__file__))
OPEN_CONCURRENCY = 256  # connections being opened at once (the listen backlog is 511)
SLOW_LINE = b"NOOP\r\n"
TARGET_LATENCY, TARGET_PLAIN_KIB, TARGET_TLS_KIB = 2.0, 4.0, 48.0


# -- the holder: a child process that opens and keeps connections, told what to do on stdin --------------------

class Pool:
    """What smtpgen.Session needs of its generator, for one kind of connection."""

    def __init__(self, holder, kind, port, ctx):
        self.holder, self.kind = holder, kind
        self.host, self.port, self.ctx = "127.0.0.1", port, ctx
        self.mode = "smtps" if ctx else "plain"
        self.sel = holder.sel
        self.server_name, self.resume = "localhost", False
        self.connections = self.handshakes = self.resumed = 0
        self.sessions = []
        self.alive = self.failed = self.closed_by_server = 0


class Held(smtpgen.Session):
    """A connection that opens (TLS for smtps), reads its 220 and then only reads (and discards)."""

    def run(self):
        g = self.gen
        try:
            yield from self.connect()
            if g.ctx is not None:
                yield from self.handshake()
            yield from self.reply(b"220", "greeting")
        except smtpgen.GenError as e:
            g.failed += 1
            g.holder.error = str(e)
            self.close()
            g.holder.opened(self)
            return
        g.alive += 1
        self.ready = True
        g.holder.opened(self)
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                yield smtpgen.WANT_READ
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                g.alive -= 1
                g.closed_by_server += 1
                self.close()
                return
            g.holder.replies += data.count(b"\n")


class Holder:
    def __init__(self, plain_port, tls_port):
        self.sel = selectors.DefaultSelector()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.pools = {"plain": Pool(self, "plain", plain_port, None), "tls": Pool(self, "tls", tls_port, ctx),
                      "slow": Pool(self, "slow", plain_port, None)}
        self.pending = []  # (pool, count left to start)
        self.opening = 0
        self.waiting_reply = None  # the command whose answer waits for its connections to open
        self.started = 0.0
        self.replies = self.dripped = 0
        self.error = None
        self.inbuf = b""
        self.slot = 0
        self.next_tick = time.monotonic()
        self.running = True

    def answer(self, obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def status(self):
        return {k: {"alive": p.alive, "failed": p.failed, "closed_by_server": p.closed_by_server}
                for k, p in self.pools.items()} | {"replies": self.replies, "dripped_bytes": self.dripped,
                                                   "error": self.error}

    def start_more(self):
        while self.pending and self.opening < OPEN_CONCURRENCY:
            pool, left = self.pending[0]
            s = Held(pool, len(pool.sessions))
            s.drip_at, s.ready = 0, False
            pool.sessions.append(s)
            self.opening += 1
            s.step()
            if left <= 1:
                self.pending.pop(0)
            else:
                self.pending[0] = (pool, left - 1)

    def opened(self, s):
        self.opening -= 1

    def command(self, line):
        words = line.split()
        if not words:
            return
        cmd = words[0]
        if cmd in self.pools:
            if int(words[1]) > 0:
                self.pending.append((self.pools[cmd], int(words[1])))
            self.waiting_reply = cmd
            self.started = time.monotonic()
        elif cmd == "close":
            pool = self.pools[words[1]]
            n = 0
            for s in pool.sessions:
                if s.sock is not None:
                    s.close()
                    n += 1
            pool.sessions = []
            pool.alive = 0
            self.answer({"closed": n})
        elif cmd == "status":
            self.answer(self.status())
        elif cmd == "quit":
            self.running = False

    def drip(self):
        """Every 10 ms, a hundredth of the slow clients send their next byte: each sends one a second."""
        now = time.monotonic()
        if now < self.next_tick:
            return
        self.next_tick += 0.01
        if self.next_tick < now:  # fell behind (a long open): do not burst
            self.next_tick = now + 0.01
        slot, self.slot = self.slot, (self.slot + 1) % 100
        for s in self.pools["slow"].sessions[slot::100]:
            if s.sock is None or not s.ready:
                continue
            try:
                s.sock.send(SLOW_LINE[s.drip_at:s.drip_at + 1])
                s.drip_at = (s.drip_at + 1) % len(SLOW_LINE)
                self.dripped += 1
            except OSError:
                pass  # the read side sees the close

    def run(self):
        stdin = sys.stdin.buffer.raw
        self.sel.register(stdin.fileno(), selectors.EVENT_READ, None)
        while self.running:
            self.start_more()
            if self.waiting_reply and not self.pending and self.opening == 0:
                pool = self.pools[self.waiting_reply]
                self.answer({"opened": pool.alive, "failed": pool.failed,
                             "seconds": round(time.monotonic() - self.started, 3), "error": self.error})
                self.waiting_reply = None
            for key, _ in self.sel.select(0.01):
                if key.data is None:
                    data = os.read(stdin.fileno(), 4096)
                    if not data:
                        self.running = False
                        break
                    self.inbuf += data
                    while b"\n" in self.inbuf:
                        line, self.inbuf = self.inbuf.split(b"\n", 1)
                        self.command(line.decode())
                else:
                    key.data.step()
            self.drip()
        for pool in self.pools.values():
            for s in pool.sessions:
                s.close()


def hold_main(argv):
    Holder(int(argv[0]), int(argv[1])).run()
    return 0


# -- the benchmark ------------------------------------------------------------------------------------------------

class HolderProc:
    def __init__(self, plain_port, tls_port, cpu, workdir):
        self.stderr_path = os.path.join(workdir, "holder.stderr")
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(pin(["/usr/bin/python3", os.path.abspath(__file__), "_hold", str(plain_port),
                                              str(tls_port)], cpu), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err)

    def ask(self, line, timeout):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise BenchError(f"the holder did not answer '{line}' in {timeout:.0f} s")
        out = self.proc.stdout.readline()
        if not out:
            raise BenchError(f"the holder ended: {read_text(self.stderr_path)[-800:]}")
        return json.loads(out)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return stop(self.proc, "holder")


def latency(port, n, spread_s, deadline):
    """n transactions, one after another, spread over spread_s seconds; their durations in ms."""
    out = []
    t0 = time.monotonic()
    for i in range(n):
        if time.monotonic() > deadline:
            raise BenchError("time budget exhausted during a latency phase (--budget-seconds)")
        due = t0 + spread_s * i / n
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        t = time.perf_counter()
        smtp_transaction(port, timeout=30)
        out.append((time.perf_counter() - t) * 1000)
    return out


def lat_summary(ms):
    ms = sorted(ms)

    def pct(p):
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 3)

    return {"n": len(ms), "median_ms": round(statistics.median(ms), 3), "p90_ms": pct(90), "p99_ms": pct(99),
            "max_ms": round(ms[-1], 3), "mean_ms": round(statistics.fmean(ms), 3),
            "slowest_ms": [round(v, 2) for v in ms[-10:]]}


def latency_phase(sf, holder, args, deadline):
    """The normal client's latency over one phase, with the server's and the machine's load meanwhile."""
    pid = sf.proc.pid
    load = OtherLoad([pid, holder.proc.pid])
    before = holder.ask("status", 10)
    cpu0, t0 = cpu_ns(pid), time.monotonic()
    ms = latency(sf.port("smtp"), args.probes, args.slow_seconds, deadline)
    secs = time.monotonic() - t0
    cpu1 = cpu_ns(pid)
    other = load.cpus()
    after = holder.ask("status", 10)
    return lat_summary(ms) | {"other_load_cpus": round(other, 3), "seconds": round(secs, 1),
                              "server_busy": round((cpu1 - cpu0) / 1e9 / secs, 4),
                              "slow_bytes_per_s": round((after["dripped_bytes"] - before["dripped_bytes"]) / secs, 1)}


def wait_live(sf, want, timeout):
    """Wait until the admin socket counts want live sessions (the admin connection is not a session)."""
    end = time.monotonic() + timeout
    while True:
        live = sf.stats()["sessions"]["live"]
        if live == want or time.monotonic() > end:
            return live
        time.sleep(0.1)


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def settle_rss(pid, seconds=0.5):
    time.sleep(seconds)
    return rss_kib(pid)


def nofile_of(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_hold":
        return hold_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description="smtpfault under many idle and slow connections (issue 8).")
    ap.add_argument("smtpfault", help="path to the smtpfault binary")
    ap.add_argument("--idle", type=int, default=10000, help="idle plain connections (default 10000)")
    ap.add_argument("--tls", type=int, default=1000, help="idle TLS connections for the RSS figure (default 1000)")
    ap.add_argument("--slow", type=int, default=1000, help="slowloris clients, 1 byte/s each (default 1000)")
    ap.add_argument("--slow-seconds", type=float, default=30,
                    help="how long each latency phase lasts, idle and under slowloris (default 30)")
    ap.add_argument("--probes", type=int, default=300, help="transactions per latency phase (default 300)")
    ap.add_argument("--idle-timeout", type=int, default=900,
                    help="smtpfault's --idle-timeout, longer than the run (default 900)")
    ap.add_argument("--budget-seconds", type=float, default=400, help="give up after this long (default 400)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin smtpfault to the last CPU and the clients to the first")
    ap.add_argument("--probe-unpinned", action="store_true",
                    help="let the normal client run on any CPU (default: the holder's, the first)")
    args = ap.parse_args()
    started = time.monotonic()
    deadline = started + args.budget_seconds
    binary = os.path.abspath(args.smtpfault)
    server_cpu, client_cpu, placement = cpu_plan(args.no_pin)
    soft, hard = raise_nofile()
    notes = []
    need = args.idle + args.tls + args.slow + 200
    if soft < need:
        cut = max(0, soft - args.tls - args.slow - 200)
        notes.append(f"RLIMIT_NOFILE is {soft} (hard {hard}): idle connections cut from {args.idle} to {cut}")
        args.idle = cut
    load_start = loadavg()
    workdir = tempfile.mkdtemp(prefix="smtpfault-load-")
    certs = os.path.join(workdir, "pki")
    sf = Smtpfault(binary, workdir, ["--smtp", "127.0.0.1:0", "--submission", "off", "--smtps", "127.0.0.1:0",
                                     "--admin", "127.0.0.1:0", "--certs-dir", certs, "--idle-timeout",
                                     str(args.idle_timeout), "-q"], server_cpu)
    holder = None
    res = {"placement": placement, "rlimit_nofile": {"soft": soft, "hard": hard}, "idle_timeout_s": args.idle_timeout,
           "loadavg_start": load_start, "notes": notes}
    rc = None
    try:
        sf.start()
        pid = sf.proc.pid
        plain, tls = sf.port("smtp"), sf.port("smtps")
        res["smtpfault_rlimit_nofile"] = nofile_of(pid)
        holder = HolderProc(plain, tls, client_cpu, workdir)
        if client_cpu is not None and not args.probe_unpinned:
            os.sched_setaffinity(0, {client_cpu})  # the normal client (this process) beside the holder
        res["holder_rlimit_nofile"] = nofile_of(holder.proc.pid)
        log(f"smtpfault pid {pid}, holder pid {holder.proc.pid}; {placement}; RLIMIT_NOFILE {soft} (hard {hard}); "
            f"load average {load_start}")

        # 1. an idle server's latency
        latency(plain, 20, 0, deadline)  # warm-up
        res["latency_idle"] = latency_phase(sf, holder, args, deadline)
        log(f"idle server: median {res['latency_idle']['median_ms']:.2f} ms, p99 {res['latency_idle']['p99_ms']:.2f}"
            f" ms over {args.probes} transactions")

        # 2. idle plain connections
        rss0 = settle_rss(pid)
        r = holder.ask(f"plain {args.idle}", max(60, args.idle / 100))
        live = wait_live(sf, r["opened"], 10)
        rss1 = settle_rss(pid)
        if r["opened"] != args.idle or live != args.idle:
            raise BenchError(f"{r['opened']} of {args.idle} idle connections opened ({r['failed']} failed: "
                             f"{r['error']}), the server counts {live} live")
        res["idle"] = {"connections": args.idle, "open_seconds": r["seconds"], "rss_before_kib": rss0,
                       "rss_after_kib": rss1, "kib_per_connection": round((rss1 - rss0) / max(1, args.idle), 3)}
        log(f"{args.idle} idle connections opened in {r['seconds']:.1f} s: RSS {rss0} -> {rss1} KiB, "
            f"{res['idle']['kib_per_connection']:.2f} KiB each")

        # 3. idle TLS connections
        if args.tls > 0:
            r = holder.ask(f"tls {args.tls}", max(60, args.tls / 20))
            live = wait_live(sf, args.idle + r["opened"], 10)
            rss2 = settle_rss(pid)
            if r["opened"] != args.tls or live != args.idle + args.tls:
                raise BenchError(f"{r['opened']} of {args.tls} TLS connections opened ({r['failed']} failed: "
                                 f"{r['error']}), the server counts {live} live")
            holder.ask("close tls", 30)
            live = wait_live(sf, args.idle, 10)
            rss3 = settle_rss(pid, 1.0)
            res["tls"] = {"connections": args.tls, "open_seconds": r["seconds"], "rss_before_kib": rss1,
                          "rss_after_kib": rss2, "kib_per_connection": round((rss2 - rss1) / args.tls, 3),
                          "rss_after_close_kib": rss3, "live_after_close": live}
            log(f"{args.tls} TLS connections in {r['seconds']:.1f} s: RSS {rss1} -> {rss2} KiB, "
                f"{res['tls']['kib_per_connection']:.2f} KiB each; {rss3} KiB once closed")

        # 4. slowloris, and the normal client's latency meanwhile
        r = holder.ask(f"slow {args.slow}", max(60, args.slow / 100))
        if r["opened"] != args.slow:
            raise BenchError(f"{r['opened']} of {args.slow} slow clients connected ({r['failed']} failed: "
                             f"{r['error']})")
        time.sleep(2)
        res["latency_slowloris"] = latency_phase(sf, holder, args, deadline)
        after = holder.ask("status", 10)
        res["latency_slowloris"]["slow_replies"] = after["replies"]
        log(f"under {args.slow} slowloris clients and {args.idle} idle connections: median "
            f"{res['latency_slowloris']['median_ms']:.2f} ms, p99 {res['latency_slowloris']['p99_ms']:.2f} ms")

        # 5. nothing was dropped
        st = sf.stats()
        res["end"] = {"holder": after, "server_live": st["sessions"]["live"], "server_total": st["sessions"]["total"]}
        for kind in ("plain", "slow"):
            if after[kind]["closed_by_server"]:
                raise BenchError(f"the server closed {after[kind]['closed_by_server']} {kind} connections")
        if st["sessions"]["live"] != args.idle + args.slow:
            raise BenchError(f"the server counts {st['sessions']['live']} live sessions, expected "
                             f"{args.idle + args.slow}")
        res["smtpfault_vmhwm_kib"] = proc_status(pid, "VmHWM")

        # 6. the idle server's latency again, once every connection is closed: the two idle phases bracket
        # the loaded one, so that a drift of the machine's speed shows (and their mean is the reference)
        for kind in ("slow", "plain"):
            holder.ask(f"close {kind}", 30)
        live = wait_live(sf, 0, 15)
        if live != 0:
            raise BenchError(f"{live} sessions still live once the clients closed them all")
        res["latency_idle_after"] = latency_phase(sf, holder, args, deadline)
        for q in ("median_ms", "p99_ms"):
            ref = (res["latency_idle"][q] + res["latency_idle_after"][q]) / 2
            res[f"latency_ratio_{q[:-3]}"] = round(res["latency_slowloris"][q] / ref, 3)
        expected = 20 + 3 * args.probes
        if sf.stats()["messages"]["accepted"] != expected:
            raise BenchError(f"the server accepted {sf.stats()['messages']['accepted']} messages, the probes sent "
                             f"{expected}")
        res["messages_accepted"] = expected

    finally:
        if holder is not None:
            holder.stop()
        if sf.proc is not None:
            rc = sf.stop()
        warnings = sf.stderr_text()
        shutil.rmtree(workdir, ignore_errors=True)
    res["smtpfault_exit"] = rc
    res["elapsed_seconds"] = round(time.monotonic() - started, 1)
    if rc != 0:
        raise BenchError(f"smtpfault exited with status {rc} on SIGTERM: {warnings[-500:]}")
    report(res, args, warnings)
    if args.json:
        write_json(args.json, res)
    return 0


def report(res, args, warnings):
    li, ls = res["latency_idle"], res["latency_slowloris"]
    ok = "met"
    print()
    print(f"smtpfault under load over 127.0.0.1; {os.cpu_count()} CPUs, {res['placement']}")
    print(f"RLIMIT_NOFILE: {res['rlimit_nofile']['soft']} (hard {res['rlimit_nofile']['hard']}); smtpfault "
          f"{res['smtpfault_rlimit_nofile']}, holder {res['holder_rlimit_nofile']}; --idle-timeout "
          f"{res['idle_timeout_s']} s")
    for n in res["notes"]:
        print(f"note: {n}")
    print()
    print("normal client, one transaction per connection (connect to 221), ms:")
    print(f"  idle server:      median {li['median_ms']:.2f}, p90 {li['p90_ms']:.2f}, p99 {li['p99_ms']:.2f}, max "
          f"{li['max_ms']:.2f} ({li['n']} transactions; other load {li['other_load_cpus']:.2f} CPUs)")
    print(f"  under slowloris:  median {ls['median_ms']:.2f}, p90 {ls['p90_ms']:.2f}, p99 {ls['p99_ms']:.2f}, max "
          f"{ls['max_ms']:.2f} ({ls['n']} transactions over {ls['seconds']:.0f} s; other load "
          f"{ls['other_load_cpus']:.2f} CPUs)")
    la = res["latency_idle_after"]
    print(f"  idle again:       median {la['median_ms']:.2f}, p90 {la['p90_ms']:.2f}, p99 {la['p99_ms']:.2f}, max "
          f"{la['max_ms']:.2f} (every connection closed; other load {la['other_load_cpus']:.2f} CPUs)")
    print(f"    with {args.idle} idle connections and {args.slow} slow clients sending "
          f"{ls['slow_bytes_per_s']:.0f} bytes/s in all; server busy {ls['server_busy'] * 100:.1f}%")
    for what, v in (("median", res["latency_ratio_median"]), ("p99", res["latency_ratio_p99"])):
        print(f"  ratio ({what}, against the mean of the two idle phases): {v:.2f} (target within "
              f"{TARGET_LATENCY:g}x: {ok if v <= TARGET_LATENCY else 'NOT met'})")
    if max(li["other_load_cpus"], ls["other_load_cpus"], la["other_load_cpus"]) > 0.1:
        print("  (other processes used the CPUs meanwhile: the tails are theirs as much as the server's)")
    print()
    i = res["idle"]
    print(f"RSS per idle plain connection: {i['kib_per_connection']:.2f} KiB ({i['connections']} connections, "
          f"{i['rss_before_kib']} -> {i['rss_after_kib']} KiB; target under {TARGET_PLAIN_KIB:g} KiB: "
          f"{ok if i['kib_per_connection'] < TARGET_PLAIN_KIB else 'NOT met'})")
    if "tls" in res:
        t = res["tls"]
        print(f"RSS per TLS connection beyond the baseline: {t['kib_per_connection']:.2f} KiB ({t['connections']} "
              f"connections, {t['rss_before_kib']} -> {t['rss_after_kib']} KiB; target under {TARGET_TLS_KIB:g} KiB: "
              f"{ok if t['kib_per_connection'] < TARGET_TLS_KIB else 'NOT met'}); {t['rss_after_close_kib']} KiB "
              "after they closed")
    print(f"smtpfault peak RSS (VmHWM): {res['smtpfault_vmhwm_kib'] / 1024:.1f} MiB")
    e = res["end"]
    print(f"checks: all {args.idle} idle and {args.slow} slow connections still open after the slowloris phase "
          f"(server: {e['server_live']} live); {res['messages_accepted']} probe messages accepted, as sent; "
          f"smtpfault exit {res['smtpfault_exit']} on SIGTERM")
    print(f"load average {res['loadavg_start']} at the start, {loadavg()} at the end; total time "
          f"{res['elapsed_seconds']:.0f} s")
    if warnings:
        print(f"smtpfault stderr:\n{warnings[-2000:]}")


if __name__ == "__main__":
    run_main(main, "bench-load")
