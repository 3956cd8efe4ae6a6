#!/usr/bin/python3
"""Soak benchmark: a million messages through a bounded store, RSS sampled all the way, every message counted.

Usage: soak.py SMTPFAULT [--messages N] [--sessions S] [--samples K] [--store-max-messages M] [--size BYTES]
               [--connection-per-message] [--client smtp-source|smtpgen] [--tls] [--png FILE] [--json FILE]

One smtpfault (-q, --store-max-messages M, default 1,000: the store is full almost at once and then evicts
its oldest message for every new one) receives --messages messages (default 1,000,000) from --sessions
sessions (default 50), in --samples chunks (default 20). The client is Postfix's smtp-source (fast, plain
SMTP) or bench/smtpgen.py (--client smtpgen; needed for --tls, STARTTLS on every connection). Messages go
on reused connections unless --connection-per-message. After every chunk:
  * smtpfault's VmRSS (/proc/PID/status) is sampled, with its CPU time and the admin socket's stats;
  * the chunk counts only if the client exits 0 with nothing on stderr (smtp-source exits non-zero on any
    reply other than 2xx, or 354 after DATA; smtpgen checks every reply), so every message of the chunk was
    acknowledged with a 250; and the admin socket's messages.accepted must have grown by exactly the chunk.
At the end: messages.accepted equals the messages acknowledged, messages.kept + messages.evicted equals
messages.accepted, kept is at most M, and nothing was discarded. The RSS curve is printed as a table
(and drawn to --png with Debian's python3-matplotlib, when it is installed). RSS is flat when, after the
warm-up, it grew by at most --max-growth-kib (default 1024), from the first sample to the last and along
its least-squares line over the same span (so one noisy sample neither hides nor fakes a trend). The
warm-up ends at the first sample where the store is full, the admin socket's ring of the last 200 closed
sessions (with their transcripts, up to 32 KiB each) is full and --sessions more have closed since, and at
least --warmup-fraction of the messages (default 0.2) have been sent.
Other processes' CPU use is measured per chunk and reported. Every process started here is stopped by PID.
"""

import argparse
import os
import shutil
import subprocess
import tempfile
import time

from benchlib import (BenchError, OtherLoad, Smtpfault, cpu_ns, cpu_plan, find_tool, loadavg, log, pin,
                      print_table, proc_status, run_main, write_json)

HERE = os.path.dirname(os.path.abspath(__file__))
SENDER, RECIPIENT, HELO = "soak@example.com", "sink@example.com", "soak.invalid"
CHUNK_TIMEOUT_S = 900
RECENT_MAX = 200  # SERVER_RECENT_MAX in server/server.h: closed sessions the admin socket keeps


def client_cmd(args, port, count):
    if args.client == "smtp-source":
        cmd = [find_tool("smtp-source"), "-s", str(args.sessions), "-m", str(count), "-l", str(args.size),
               "-f", SENDER, "-t", RECIPIENT, "-M", HELO]
        if not args.connection_per_message:
            cmd.append("-d")
        return cmd + [f"127.0.0.1:{port}"]
    cmd = ["/usr/bin/python3", os.path.join(HERE, "smtpgen.py"), "127.0.0.1", str(port), "--messages", str(count),
           "--sessions", str(args.sessions), "--size", str(args.size), "--mode", "starttls" if args.tls else "plain"]
    if not args.connection_per_message:
        cmd.append("--reuse")
    return cmd


def slope(xs, ys):
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def draw_png(path, samples, warm):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "python3-matplotlib is not installed (apt-get install python3-matplotlib): no PNG"
    xs = [s["messages"] / 1000 for s in samples]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(xs, [s["rss_kib"] / 1024 for s in samples], marker="o", label="VmRSS")
    ax.axvline(warm / 1000, color="grey", linestyle="--", label="end of warm-up")
    ax.set_xlabel("messages (thousands)")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return f"RSS curve drawn to {path}"


def main():
    ap = argparse.ArgumentParser(description="smtpfault soak: RSS and accounting over many messages.")
    ap.add_argument("smtpfault", help="path to the smtpfault binary")
    ap.add_argument("--messages", type=int, default=1000000, help="messages in all (default 1,000,000)")
    ap.add_argument("--sessions", type=int, default=50, help="concurrent sessions (default 50)")
    ap.add_argument("--samples", type=int, default=20, help="chunks, each followed by an RSS sample (default 20)")
    ap.add_argument("--store-max-messages", type=int, default=1000, help="smtpfault's bound (default 1000)")
    ap.add_argument("--size", type=int, default=1024, help="message body bytes (default 1024)")
    ap.add_argument("--connection-per-message", action="store_true", help="a new connection for every message")
    ap.add_argument("--client", choices=("smtp-source", "smtpgen"), default="smtp-source")
    ap.add_argument("--tls", action="store_true", help="STARTTLS on every connection (implies --client smtpgen)")
    ap.add_argument("--warmup-fraction", type=float, default=0.2,
                    help="share of the messages before RSS must be flat (default 0.2)")
    ap.add_argument("--max-growth-kib", type=int, default=1024,
                    help="RSS growth allowed after the warm-up (default 1024)")
    ap.add_argument("--png", metavar="FILE", help="also draw the RSS curve (needs python3-matplotlib)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout)")
    ap.add_argument("--budget-seconds", type=float, default=1800, help="give up after this long (default 1800)")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin smtpfault to the last CPU and the client to the first")
    args = ap.parse_args()
    if args.tls:
        args.client = "smtpgen"
    if args.samples < 4 or args.messages < args.samples * args.sessions:
        raise BenchError("--messages must allow --samples (at least 4) chunks of at least --sessions messages")
    started = time.monotonic()
    binary = os.path.abspath(args.smtpfault)
    server_cpu, client_cpu, placement = cpu_plan(args.no_pin)
    workdir = tempfile.mkdtemp(prefix="smtpfault-soak-")
    sf_args = ["--smtp", "127.0.0.1:0", "--submission", "off", "--smtps", "off", "--admin", "127.0.0.1:0",
               "--store-max-messages", str(args.store_max_messages), "-q"]
    if args.tls:
        sf_args += ["--certs-dir", os.path.join(workdir, "pki")]
    else:
        sf_args += ["--no-tls"]
    sf = Smtpfault(binary, workdir, sf_args, server_cpu)
    load_start = loadavg()
    samples = []
    acked = 0
    rc = None
    chunks = [args.messages // args.samples + (1 if i < args.messages % args.samples else 0)
              for i in range(args.samples)]
    try:
        sf.start()
        pid, port = sf.proc.pid, sf.port("smtp")
        log(f"smtpfault pid {pid}; {placement}; {args.messages} messages in {args.samples} chunks, "
            f"{args.sessions} sessions, client {args.client}; load average {load_start}")
        st = sf.stats()
        samples.append({"messages": 0, "rss_kib": proc_status(pid, "VmRSS"), "seconds": 0.0, "rate": None,
                        "kept": st["messages"]["kept"], "evicted": st["messages"]["evicted"], "other_load_cpus": 0.0,
                        "server_cpu_us_per_msg": None, "sessions_closed": 0})
        t_all = time.monotonic()
        for count in chunks:
            if time.monotonic() - started > args.budget_seconds:
                raise BenchError(f"time budget of {args.budget_seconds:.0f} s exhausted after {acked} messages")
            before = st["messages"]["accepted"]
            load = OtherLoad([pid])
            cpu0, t0 = cpu_ns(pid), time.monotonic()
            try:
                r = subprocess.run(pin(client_cmd(args, port, count), client_cpu), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=CHUNK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise BenchError(f"{args.client} did not finish a chunk of {count} in {CHUNK_TIMEOUT_S} s")
            secs = time.monotonic() - t0
            cpu1, other = cpu_ns(pid), load.cpus()
            err = r.stderr.decode(errors="replace").strip()
            if r.returncode != 0 or err:
                raise BenchError(f"{args.client} failed after {acked} messages (exit {r.returncode}): {err[:500]}")
            acked += count
            st = sf.stats()
            got = st["messages"]["accepted"] - before
            if got != count:
                raise BenchError(f"the server accepted {got} messages of a chunk of {count} (after {acked - count})")
            samples.append({"messages": acked, "rss_kib": proc_status(pid, "VmRSS"), "seconds": round(secs, 2),
                            "rate": round(count / secs, 1), "kept": st["messages"]["kept"],
                            "evicted": st["messages"]["evicted"], "other_load_cpus": round(other, 3),
                            "server_cpu_us_per_msg": round((cpu1 - cpu0) / 1000 / count, 1),
                            "sessions_closed": st["sessions"]["total"] - st["sessions"]["live"]})
            log(f"{acked:>9} messages: RSS {samples[-1]['rss_kib']} KiB, {samples[-1]['rate']:,.0f} msg/s, "
                f"kept {st['messages']['kept']}, evicted {st['messages']['evicted']}")
        total_s = time.monotonic() - t_all
        hwm = proc_status(pid, "VmHWM")
    finally:
        if sf.proc is not None:
            rc = sf.stop()
        warnings = sf.stderr_text()
        shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        raise BenchError(f"smtpfault exited with status {rc} on SIGTERM: {warnings[-500:]}")

    m = st["messages"]
    checks = {"accepted_equals_acknowledged": m["accepted"] == acked,
              "kept_plus_evicted_equals_accepted": m["kept"] + m["evicted"] == m["accepted"],
              "kept_within_bound": m["kept"] <= args.store_max_messages, "nothing_discarded": m["discarded"] == 0}
    # The warm-up ends at the first sample with the store full, the admin socket's ring of recent sessions
    # full (SERVER_RECENT_MAX closed sessions, each keeping its transcript of up to 32 KiB) while as many
    # sessions as run at once have had theirs too (a record is freed only when a new one takes its slot),
    # and at least --warmup-fraction of the messages sent; the samples from there on must be flat.
    start = next((i for i, s in enumerate(samples) if s["messages"] >= args.messages * args.warmup_fraction
                  and s["kept"] >= min(args.store_max_messages, s["messages"])
                  and s["sessions_closed"] >= RECENT_MAX + args.sessions),
                 None)
    if start is None or len(samples) - start < 3:
        raise BenchError("the warm-up never ended, or left fewer than 3 samples: more --messages or --samples")
    after = samples[start:]
    warm = after[0]["messages"]
    growth = after[-1]["rss_kib"] - after[0]["rss_kib"]
    per_msg = slope([s["messages"] for s in after], [s["rss_kib"] for s in after])
    per100k = per_msg * 100000
    fitted = per_msg * (after[-1]["messages"] - after[0]["messages"])  # the trend's growth over the same span
    flat = growth <= args.max_growth_kib and fitted <= args.max_growth_kib
    res = {"placement": placement, "messages": args.messages, "acknowledged": acked, "sessions": args.sessions,
           "client": args.client, "tls": args.tls, "connection_per_message": args.connection_per_message,
           "size": args.size, "store_max_messages": args.store_max_messages, "stats_messages": m, "checks": checks,
           "warmup_messages": int(warm), "rss_growth_after_warmup_kib": growth,
           "rss_slope_kib_per_100k": round(per100k, 1), "rss_fitted_growth_kib": round(fitted, 1), "rss_flat": flat,
           "vmhwm_kib": hwm,
           "seconds": round(total_s, 1), "rate": round(acked / total_s, 1), "loadavg_start": load_start,
           "max_other_load_cpus": max(s["other_load_cpus"] for s in samples), "samples": samples,
           "smtpfault_exit": rc}

    print()
    print(f"smtpfault soak over 127.0.0.1: {acked:,} messages of {args.size} bytes, {args.sessions} sessions, "
          f"{'a connection per message' if args.connection_per_message else 'reused connections'}"
          f"{', STARTTLS' if args.tls else ''}, client {args.client}; --store-max-messages "
          f"{args.store_max_messages}; {os.cpu_count()} CPUs, {placement}")
    print()
    print_table(["messages", "VmRSS KiB", "change KiB", "msg/s", "server us/msg", "kept", "evicted",
                 "sessions closed", "other load"],
                [[f"{s['messages']:,}", str(s["rss_kib"]),
                  "-" if i == 0 else f"{s['rss_kib'] - samples[i - 1]['rss_kib']:+d}",
                  "-" if s["rate"] is None else f"{s['rate']:,.0f}",
                  "-" if s["server_cpu_us_per_msg"] is None else f"{s['server_cpu_us_per_msg']:.0f}",
                  str(s["kept"]), str(s["evicted"]), f"{s['sessions_closed']:,}", f"{s['other_load_cpus']:.2f}"]
                 for i, s in enumerate(samples)])
    print()
    print(f"RSS after the warm-up ({int(warm):,} messages, {after[0]['sessions_closed']:,} sessions closed): "
          f"{after[0]['rss_kib']} -> {after[-1]['rss_kib']} KiB "
          f"({growth:+d} KiB; least-squares slope {per100k:+.1f} KiB per 100,000 messages, {fitted:+.0f} KiB over "
          f"the span): " + ("flat" if flat else f"NOT flat (limit: {args.max_growth_kib} KiB both ways)"))
    print(f"peak RSS (VmHWM) {hwm} KiB; {acked / total_s:,.0f} msg/s over {total_s:.0f} s")
    print(f"accounting: acknowledged {acked:,}; server accepted {m['accepted']:,}, kept {m['kept']:,} + evicted "
          f"{m['evicted']:,} = {m['kept'] + m['evicted']:,}, discarded {m['discarded']}: "
          + ("all checks pass" if all(checks.values()) else
             "FAILED: " + ", ".join(k for k, v in checks.items() if not v)))
    print(f"other load: at most {res['max_other_load_cpus']:.2f} CPUs during a chunk; load average {load_start} at "
          f"the start, {loadavg()} at the end; smtpfault exit {rc} on SIGTERM")
    if args.png:
        print(draw_png(args.png, samples, warm))
    if warnings:
        print(f"smtpfault stderr:\n{warnings[-2000:]}")
    if args.json:
        write_json(args.json, res)
    return 0 if all(checks.values()) and flat else 1


if __name__ == "__main__":
    run_main(main, "bench-soak")
