#!/usr/bin/python3
"""TLS throughput of smtpfault against Nodemailer's smtp-server, both driven by bench/smtpgen.py.

Usage: tls_bench.py SMTPFAULT [--json FILE] [--repeats N] [--target-seconds S] [--scenarios K1,K2] [--no-pin]
                    [--stock-greeting] [--size BYTES] [--budget-seconds S] ...

One run starts one smtpfault and one smtp-server (bench/node/peer.js, pinned by bench/node/package-lock.json;
install it with `npm ci` in bench/node) and keeps both for every scenario. Both present the same certificate,
the ECDSA P-256 server.pem that `smtpfault certs DIR` writes, and are set up alike: a plain listener
offering STARTTLS and AUTH (neither required) and an implicit-TLS listener requiring AUTH (any credentials
accepted); every message is accepted and only counted; no logging. TLS session resumption works on both
when the client offers it (TLS 1.3 session tickets).

The load generator, bench/smtpgen.py, does real TLS through Python's ssl module (OpenSSL) on one thread
and one selector loop; its own CPU time is measured for every run, so a run it could not drive faster
shows as "client busy" near 100%. With --generators N, N of them share a run's sessions and messages, on
every CPU but the servers' (useful with more than 2 CPUs: an OpenSSL client handshake costs about twice
smtpfault's server handshake). Each scenario is 1 KiB messages over STARTTLS or implicit TLS (with
AUTH PLAIN), 1 or 50 sessions, and either a new connection (and TLS handshake) per message, with or
without resumption of the previous connection's TLS session, or one connection per session for all its
messages. Per scenario:
  * a warm-up run against each server, repeated with more messages until it lasts 0.5 s; the faster
    server's rate sets the message count of the measured runs (about --target-seconds on the faster
    server, at most --max-run-seconds on the slower one);
  * --repeats measured runs per server, interleaved A B, B A, ...; the median rate is reported, with the
    server's CPU time per message (/proc/PID/task/*/schedstat, all threads) and the generator's.
A run counts only if the generator exits 0 (it checks every reply) and the server confirms it accepted
exactly the messages sent, on exactly the connections opened: smtpfault's admin socket (stats:
messages.accepted, sessions.total), smtp-server's counters (peer.js's control port). A run during which
other processes used more than --max-other-load CPUs (user time, /proc/stat, less ours) is run again, up
to --retries times; runs still disturbed are counted in the report.

Targets (issue 3): smtpfault at least 5 times smtp-server's rate where every message opens a new
connection (handshake-bound), at least 1.5 times on reused connections. The report says for each
scenario whether the measured ratio meets its target, and gives the ratio of server CPU time per message
too: when the generator, not the server, set the pace, the measured ratio understates the faster
server's lead and the CPU ratio is the better estimate of the servers' capacities.
Only Debian's python3 standard library is used. Every process started here is stopped by its PID.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from benchlib import (BenchError, run_main, OtherLoad, Retrying, Smtpfault, add_comparison_args, checked_binary, cpu_ns,
                      cpu_plan, fmt_rate, json_line, loadavg, log, pick_scenarios, pin, print_table, proc_status,
                      read_text, round_count, spawn_with_ports, stop, write_json)

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "smtpgen.py")
PEER = os.path.join(HERE, "node", "peer.js")
AUTH = "bench:secret"
SIZE = 1024  # bytes a message, unless --size says otherwise
RUN_TIMEOUT_S = 120

# (key, label, mode, sessions, reuse connection, offer resumption); AUTH with smtps only (it requires AUTH)
SCENARIOS = [
    ("starttls-s1-conn", "STARTTLS, 1 session, connection per message", "starttls", 1, False, False),
    ("starttls-s50-conn", "STARTTLS, 50 sessions, connection per message", "starttls", 50, False, False),
    ("starttls-s1-resume", "STARTTLS, 1 session, connection per message, resumed", "starttls", 1, False, True),
    ("starttls-s50-resume", "STARTTLS, 50 sessions, connection per message, resumed", "starttls", 50, False, True),
    ("smtps-s1-conn", "implicit TLS + AUTH, 1 session, connection per message", "smtps", 1, False, False),
    ("smtps-s50-conn", "implicit TLS + AUTH, 50 sessions, connection per message", "smtps", 50, False, False),
    ("smtps-s1-resume", "implicit TLS + AUTH, 1 session, connection per message, resumed", "smtps", 1, False, True),
    ("smtps-s50-resume", "implicit TLS + AUTH, 50 sessions, connection per message, resumed", "smtps", 50, False,
     True),
    ("starttls-s1-reuse", "STARTTLS, 1 session, reused connection", "starttls", 1, True, False),
    ("starttls-s50-reuse", "STARTTLS, 50 sessions, reused connections", "starttls", 50, True, False),
    ("smtps-s1-reuse", "implicit TLS + AUTH, 1 session, reused connection", "smtps", 1, True, False),
    ("smtps-s50-reuse", "implicit TLS + AUTH, 50 sessions, reused connections", "smtps", 50, True, False),
]
TARGET_CONN, TARGET_REUSE = 5.0, 1.5


class SmtpfaultServer:
    name = "smtpfault"
    key = "smtpfault"

    def __init__(self, binary, workdir, certs, cpu):
        self.sf = Smtpfault(binary, workdir, ["--smtp", "127.0.0.1:0", "--submission", "off", "--smtps",
                                              "127.0.0.1:0", "--admin", "127.0.0.1:0", "--certs-dir", certs, "-q"],
                            cpu)
        self.proc = None

    def start(self):
        self.sf.start()
        self.proc = self.sf.proc

    def port(self, mode):
        return self.sf.port("smtps" if mode == "smtps" else "smtp")

    def counters(self):
        st = self.sf.stats()
        return {"accepted": st["messages"]["accepted"], "connections": st["sessions"]["total"]}

    def stderr_text(self):
        return self.sf.stderr_text()

    def stop(self):
        return self.sf.stop()


class NodeServer:
    name = "smtp-server"
    key = "smtp_server"

    def __init__(self, workdir, certs, cpu, stock_greeting):
        self.workdir, self.certs, self.cpu, self.stock_greeting = workdir, certs, cpu, stock_greeting
        self.proc = None
        self.ports = {}
        self.stderr_path = os.path.join(workdir, "peer.stderr")

    def start(self):
        node = shutil.which("node")
        if node is None:
            raise BenchError("node not found (Debian package nodejs)")
        if not os.path.isdir(os.path.join(HERE, "node", "node_modules", "smtp-server")):
            raise BenchError("smtp-server is not installed: run `npm ci` in bench/node (make bench-tls does)")
        ports = os.path.join(self.workdir, "peer.ports.json")
        cmd = [node, PEER, "--certs", self.certs, "--ports-file", ports]
        if self.stock_greeting:
            cmd.append("--stock-greeting")
        self.proc, self.ports = spawn_with_ports(cmd, self.cpu, self.stderr_path, ports, "peer.js")

    def port(self, mode):
        return int(self.ports["smtps" if mode == "smtps" else "smtp"]["port"])

    def counters(self):
        c = self.ports["control"]
        return json_line(c["host"], int(c["port"]))

    def stderr_text(self):
        return read_text(self.stderr_path).strip()

    def stop(self):
        return stop(self.proc, self.name)


class Bench(Retrying):
    def __init__(self, args, servers, server_cpu, client_cpu, deadline):
        super().__init__(args)
        self.servers, self.deadline = servers, deadline
        self.server_cpu = server_cpu
        # the generators may use every CPU but the servers'
        self.client_cpu_list = ([] if client_cpu is None else
                                [c for c in range(os.cpu_count() or 1) if c != server_cpu])
        self.client_cpus = ",".join(map(str, self.client_cpu_list)) or None
        self.client_bound = 0

    def run_gen(self, server, mode, sessions, reuse, resume, count):
        """One run of --generators smtpgen processes against server, sharing the sessions and messages;
        raises BenchError unless every message was accepted."""
        if time.monotonic() > self.deadline:
            raise BenchError(f"time budget of {self.args.budget_seconds:.0f} s exhausted (--budget-seconds)")
        n = max(1, min(self.args.generators, sessions))
        cmds = []
        for i in range(n):
            cmd = ["/usr/bin/python3", GEN, "127.0.0.1", str(server.port(mode)), "--mode", mode, "--messages",
                   str(count // n + (i < count % n)), "--sessions", str(sessions // n + (i < sessions % n)),
                   "--size", str(self.args.size)]
            cmd += (["--reuse"] if reuse else []) + (["--resume"] if resume else [])
            cmds.append(cmd + (["--auth", AUTH] if mode == "smtps" else []))
        before = server.counters()
        load = OtherLoad([s.proc.pid for s in self.servers])
        cpu0 = cpu_ns(server.proc.pid)
        procs = [subprocess.Popen(pin(cmd, self.client_cpus), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for cmd in cmds]
        outs = []
        try:
            for p in procs:
                outs.append(p.communicate(timeout=RUN_TIMEOUT_S) + (p.returncode,))
        except subprocess.TimeoutExpired:
            raise BenchError(f"smtpgen against {server.name} did not finish in {RUN_TIMEOUT_S} s")
        finally:
            for p in procs:
                if p.poll() is None:
                    stop(p, "smtpgen")
        cpu1 = cpu_ns(server.proc.pid)
        other = load.cpus()
        gens = []
        for out, err, rc in outs:
            err = err.decode(errors="replace").strip()
            if rc != 0 or err:
                raise BenchError(f"smtpgen against {server.name} failed (exit {rc}): {err[:500]}")
            gens.append(json.loads(out))
        after = server.counters()
        got = after["accepted"] - before["accepted"]
        conns = after["connections"] - before["connections"]
        total = {k: sum(g[k] for g in gens) for k in ("messages", "connections", "handshakes", "resumed")}
        if total["messages"] != count or got != count:
            raise BenchError(f"{server.name} accepted {got} messages, smtpgen sent {count} and saw "
                             f"{total['messages']} acknowledged")
        if conns != total["connections"]:
            raise BenchError(f"{server.name} counted {conns} connections, smtpgen opened {total['connections']}")
        secs = max(g["seconds"] for g in gens)
        client_s = sum(g["cpu_user_s"] + g["cpu_system_s"] for g in gens)
        cpu_busy = [load.busy(c) for c in self.client_cpu_list]
        return {"seconds": round(secs, 4), "rate": round(count / secs, 1), "generators": n,
                "handshakes_per_s": round(total["handshakes"] / secs, 1), "handshakes": total["handshakes"],
                "resumed": total["resumed"], "connections": total["connections"],
                "server_cpu_us_per_msg": None if None in (cpu0, cpu1) else round((cpu1 - cpu0) / 1000 / count, 1),
                "server_busy": None if None in (cpu0, cpu1) else round((cpu1 - cpu0) / 1e9 / secs, 3),
                "client_cpu_us_per_msg": round(client_s * 1e6 / count, 1),
                "client_busy": max(g["busy"] or 0 for g in gens),
                "client_cpu_busy": None if None in cpu_busy else rounded(sum(cpu_busy) / len(cpu_busy)),
                "server_cpu_busy": rounded(load.busy(self.server_cpu)), "other_load_cpus": round(other, 3)}

    def measure(self, server, *scenario):
        run = self.retrying(server.name, lambda: self.run_gen(server, *scenario))
        if client_bound(run):
            self.client_bound += 1
        return run

    def warm_up(self, mode, sessions, reuse, resume):
        """Warm-up runs, longer until one lasts 0.5 s; returns the message count for the measured runs."""
        rates = []
        for srv in self.servers:
            count = max(100 if reuse else 20, 4 * sessions)
            for _ in range(5):
                run = self.run_gen(srv, mode, sessions, reuse, resume, count)
                if run["seconds"] >= 0.5:
                    break
                count = int(count * min(8.0, max(2.0, 0.6 / max(run["seconds"], 0.01))))
            rates.append(run["rate"])
        n = min(max(rates) * self.args.target_seconds, min(rates) * self.args.max_run_seconds)
        return round_count(n, max(50, 2 * sessions), 500000)


def rounded(v):
    return None if v is None else round(v, 3)


def client_bound(run):
    """The generator set the pace: it was 90% busy, or its CPU had no idle time left (other load took it)."""
    return (run["client_busy"] or 0) >= 0.9 or (run["client_cpu_busy"] or 0) >= 0.97


def summary(runs):
    def med(field):
        values = [r[field] for r in runs if r[field] is not None]
        return round(statistics.median(values), 3) if values else None

    rates = [r["rate"] for r in runs]
    return {"rate": round(statistics.median(rates), 1), "rate_min": min(rates), "rate_max": max(rates),
            "handshakes_per_s": med("handshakes_per_s"), "resumed_fraction":
                round(sum(r["resumed"] for r in runs) / max(1, sum(r["handshakes"] for r in runs)), 3),
            "cpu_us_per_msg": med("server_cpu_us_per_msg"), "server_busy": med("server_busy"),
            "client_cpu_us_per_msg": med("client_cpu_us_per_msg"), "client_busy": med("client_busy"),
            "client_cpu_busy": med("client_cpu_busy"), "server_cpu_busy": med("server_cpu_busy"),
            "client_bound_runs": sum(1 for r in runs if client_bound(r)),
            "other_load_cpus": max(r["other_load_cpus"] for r in runs)}


def main():
    ap = argparse.ArgumentParser(description="smtpfault vs smtp-server over TLS, driven by bench/smtpgen.py.")
    add_comparison_args(ap, SCENARIOS, 600, "the generator")
    ap.add_argument("--max-run-seconds", type=float, default=6,
                    help="longest measured run on the slower server (default 6)")
    ap.add_argument("--generators", type=int, default=1,
                    help="smtpgen processes sharing a run's sessions, on every CPU but the servers' (default 1; "
                         "more only help with more than 2 CPUs)")
    ap.add_argument("--size", type=int, default=SIZE,
                    help=f"message size in bytes (default {SIZE}; 102400 for the 100 KiB figures)")
    ap.add_argument("--stock-greeting", action="store_true",
                    help="keep smtp-server's 100 ms wait before its greeting (see bench/node/peer.js)")
    args = ap.parse_args()

    started = time.monotonic()
    binary = checked_binary(args.smtpfault)
    scenarios = pick_scenarios(SCENARIOS, args.scenarios)
    server_cpu, client_cpu, placement = cpu_plan(args.no_pin)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    node_version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()

    workdir = tempfile.mkdtemp(prefix="smtpfault-bench-tls-")
    certs = os.path.join(workdir, "pki")
    r = subprocess.run([binary, "certs", certs], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"smtpfault certs failed: {r.stderr.strip()}")
    sf = SmtpfaultServer(binary, workdir, certs, server_cpu)
    peer = NodeServer(workdir, certs, server_cpu, args.stock_greeting)
    bench = Bench(args, [sf, peer], server_cpu, client_cpu, started + args.budget_seconds)
    results = []
    rc = hwm = peer_hwm = None
    load_start = loadavg()
    try:
        sf.start()
        peer.start()
        log(f"smtpfault pid {sf.proc.pid}, smtp-server pid {peer.proc.pid}; {placement}; load average {load_start}")
        for key, label, mode, sessions, reuse, resume in scenarios:
            count = bench.warm_up(mode, sessions, reuse, resume)
            runs = {sf.key: [], peer.key: []}
            for i in range(args.repeats):
                for srv in ((sf, peer) if i % 2 == 0 else (peer, sf)):
                    runs[srv.key].append(bench.measure(srv, mode, sessions, reuse, resume, count))
            target = TARGET_REUSE if reuse else TARGET_CONN
            res = {"key": key, "label": label, "mode": mode, "sessions": sessions, "reuse_connection": reuse,
                   "resume": resume, "auth": mode == "smtps", "messages_per_run": count, "target_ratio": target,
                   "smtpfault": summary(runs[sf.key]), "smtp_server": summary(runs[peer.key])}
            a, b = res["smtpfault"], res["smtp_server"]
            res["ratio"] = round(a["rate"] / b["rate"], 3)
            res["cpu_ratio"] = (round(b["cpu_us_per_msg"] / a["cpu_us_per_msg"], 3)
                                if a["cpu_us_per_msg"] and b["cpu_us_per_msg"] else None)
            res["target_met"] = res["ratio"] >= target
            res["runs"] = runs
            results.append(res)
            log(f"{label}: {count} messages/run, smtpfault {fmt_rate(a['rate'])}/s, smtp-server "
                f"{fmt_rate(b['rate'])}/s, ratio {res['ratio']:.2f} (target {target:g})")
    finally:
        if sf.proc is not None:
            hwm = proc_status(sf.proc.pid, "VmHWM")
            rc = sf.stop()
        if peer.proc is not None:
            peer_hwm = proc_status(peer.proc.pid, "VmHWM")
            peer.stop()
        warnings = sf.stderr_text()
        peer_err = peer.stderr_text()
        shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        raise BenchError(f"smtpfault exited with status {rc} on SIGTERM: {warnings[-500:]}")
    elapsed = time.monotonic() - started

    print()
    print(f"smtpfault vs smtp-server over TLS ({args.size} byte messages), driven by smtpgen.py over 127.0.0.1; "
          f"{os.cpu_count()} CPUs, {placement}")
    print(f"{version}; Node {node_version}, smtp-server {peer_version()}"
          + ("; smtp-server's 100 ms greeting delay kept" if args.stock_greeting else
             "; smtp-server greets at once (its 100 ms early-talker delay removed, see bench/node/peer.js)"))
    print(f"msg/s: median of {args.repeats} runs per server (min-max); ratio = smtpfault / smtp-server (target: "
          f"{TARGET_CONN:g}x with a connection per message, {TARGET_REUSE:g}x on reused connections); hs/s: TLS "
          "handshakes per second; resumed: handshakes that resumed a TLS session")
    print()

    def num(v, fmt="{:.0f}"):
        return "-" if v is None else fmt.format(v)

    def pct(v):
        return num(None if v is None else v * 100, "{:.0f}%")

    rows = []
    for r in results:
        a, b = r["smtpfault"], r["smtp_server"]
        rows.append([r["label"], str(r["messages_per_run"]), fmt_rate(a["rate"]),
                     f"({a['rate_min']:.0f}-{a['rate_max']:.0f})", fmt_rate(b["rate"]),
                     f"({b['rate_min']:.0f}-{b['rate_max']:.0f})", f"{r['ratio']:.2f}",
                     f"{r['target_ratio']:g}x {'met' if r['target_met'] else 'NOT met'}",
                     num(a["handshakes_per_s"]), num(b["handshakes_per_s"]),
                     "-" if r["reuse_connection"] else pct(a["resumed_fraction"]),
                     "-" if r["reuse_connection"] else pct(b["resumed_fraction"])])
    print_table(["scenario", "msgs/run", "smtpfault/s", "(min-max)", "smtp-server/s", "(min-max)", "ratio",
                 "target", "hs/s: sf", "node", "resumed: sf", "node"], rows)
    print()
    print("Who set the pace (medians): server us/msg = the server's CPU time per message, all threads; cpu ratio ="
          " smtp-server's / smtpfault's (the ratio if both servers were the bottleneck); server busy = its CPU "
          "time / wall time; generator busy = smtpgen's (the busiest one's, with --generators); CPU busy = how "
          "busy the server's and the generator's "
          "CPUs were, whoever used them (other load included); client-bound = runs where the generator or its "
          "CPU was saturated")
    print()
    rows = []
    for r in results:
        a, b = r["smtpfault"], r["smtp_server"]
        rows.append([r["label"], num(a["cpu_us_per_msg"]), num(b["cpu_us_per_msg"]), num(r["cpu_ratio"], "{:.2f}"),
                     pct(a["server_busy"]), pct(b["server_busy"]), pct(a["client_busy"]), pct(b["client_busy"]),
                     num(a["client_cpu_us_per_msg"]), num(b["client_cpu_us_per_msg"]),
                     f"{pct(a['server_cpu_busy'])}/{pct(a['client_cpu_busy'])}",
                     f"{pct(b['server_cpu_busy'])}/{pct(b['client_cpu_busy'])}",
                     f"{a['client_bound_runs']}/{b['client_bound_runs']}",
                     f"{max(a['other_load_cpus'], b['other_load_cpus']):.2f}"])
    print_table(["scenario", "server us/msg: sf", "node", "cpu ratio", "server busy: sf", "node",
                 "generator busy: sf", "node", "generator us/msg: sf", "node", "CPU busy srv/gen: sf", "node",
                 "client-bound sf/node", "other load"], rows)
    print()
    met = sum(1 for r in results if r["target_met"])
    print(f"targets: {met} of {len(results)} scenarios meet theirs (connection per message: {TARGET_CONN:g}x, "
          f"reused connections: {TARGET_REUSE:g}x)")
    if hwm:
        print(f"peak RSS (VmHWM): smtpfault {hwm / 1024:.1f} MiB, smtp-server {peer_hwm / 1024:.1f} MiB"
              if peer_hwm else f"peak RSS (VmHWM): smtpfault {hwm / 1024:.1f} MiB")
    print(f"checks: smtpgen exit 0 on every run (every reply checked); per-run message and connection counts "
          f"confirmed by both servers; smtpfault exit {rc} on SIGTERM")
    print(f"generator: {bench.client_bound} measured run(s) client-bound (the generator 90% busy, or its CPU 97% "
          "busy with other load): there the rate is the generator's limit, not the server's")
    quiet = bench.disturbed == 0
    print(f"other load: at most {bench.max_other:.2f} CPUs of other processes' user time in a measured run; "
          f"{bench.retried} run(s) repeated"
          + ("" if quiet else f"; {bench.disturbed} run(s) kept although disturbed: figures unreliable")
          + f"; load average {load_start} at the start, {loadavg()} at the end")
    if warnings:
        print(f"smtpfault stderr:\n{warnings[-2000:]}")
    if peer_err:
        print(f"smtp-server stderr:\n{peer_err[-2000:]}")
    print(f"total time {elapsed:.0f} s")
    if args.json:
        doc = {"smtpfault_version": version, "node_version": node_version, "smtp_server_version": peer_version(),
               "message_size": args.size, "stock_greeting": args.stock_greeting, "cpus": os.cpu_count(), "placement": placement,
               "repeats": args.repeats, "generators": args.generators, "smtpfault_vmhwm_kib": hwm,
               "smtp_server_vmhwm_kib": peer_hwm,
               "smtpfault_exit": rc, "runs_repeated": bench.retried, "runs_disturbed": bench.disturbed,
               "runs_client_bound": bench.client_bound, "max_other_load_cpus": round(bench.max_other, 3),
               "loadavg_start": load_start, "elapsed_seconds": round(elapsed, 1), "scenarios": results}
        write_json(args.json, doc)
    return 0


def peer_version():
    try:
        with open(os.path.join(HERE, "node", "node_modules", "smtp-server", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


if __name__ == "__main__":
    run_main(main, "bench-tls")
