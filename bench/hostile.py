#!/usr/bin/python3
"""Hostile-input figures (the issue "Hold under hostile input"): what an abuser costs the server, in time and
memory, measured the way the review that filed the issue measured it, so the two can be compared.

Usage: hostile.py SMTPFAULT [--json FILE]

Each scenario starts its own smtpfault (-q, --store-dir off, every listener on port 0) and reads the server's
VmRSS and VmHWM from /proc/PID/status before and after:
  keys        one admin line {"cmd":"ping","k0":1,...} of 150,000 keys, without the token (a token is set):
              the time until it is answered, and the greeting time of an SMTP client meanwhile;
  keys_token  the same with the token and 300,000 keys, so that the duplicate-key check runs;
  profile     a 1.2 MB inline profile of one object with 60,000 unknown keys and a known key 20,000 times,
              validated with the token: the time until the answer, and the SMTP greeting time meanwhile;
  parked      40 admin connections each sending 8 MiB of a line that never ends, without the token: the RSS
              they add, and how many connections the server still holds after 12 s;
  items       one 8 MiB admin line of 4 million array items, without the token: the peak RSS it costs;
  inflight    20 SMTP clients each sending 34 MiB of DATA that never ends (--max-message-size 35M): the RSS
              they add (the server-wide bound is --max-inflight-bytes, 256 MiB by default);
  subscribers 20 events.subscribe clients that never read, while 2,000 sessions make events: the RSS added;
  abandoned   200 clients that give up during a 1 h delay at MAIL: the sessions still live 3 s later.
Only Debian's python3 standard library is used; every process started here is stopped by its PID.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time

from benchlib import Smtpfault, log, print_table, proc_status, raise_nofile, run_main, write_json

TOKEN = "bench-token"
MIB = 1024 * 1024


def kib(pid, field):
    return proc_status(pid, field) or 0


def mib(kib_value):
    return round(kib_value / 1024, 1)


def fds(srv):
    return len(os.listdir(f"/proc/{srv.proc.pid}/fd"))


def connect(srv, listener="smtp", timeout=10):
    a = srv.ports[listener]
    return socket.create_connection((a["host"], int(a["port"])), timeout=timeout)


def timed_line(srv, line, answer_len=100):
    """One admin line sent while SMTP greetings are timed: its figures."""
    (secs, answer), greet = while_greeting(srv, lambda: admin_line(srv, line))
    return {"bytes": len(line), "answered_s": round(secs, 3),
            "greeting_ms": None if greet is None else round(greet, 1), "answer": answer[:answer_len]}


def greeting_ms(port, timeout=120):
    """Connect and read the 220: milliseconds, or None when none came within timeout (the loop was blocked
    all along)."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.recv(512)
        return (time.monotonic() - start) * 1000
    except OSError:
        return None


def admin_line(srv, payload, timeout=300):
    """Send one raw line to the admin socket; (seconds until the answer, the answer's first 200 bytes)."""
    start = time.monotonic()
    with connect(srv, "admin", timeout) as s:
        s.sendall(payload)
        answer = s.makefile("rb").readline()
    return time.monotonic() - start, answer[:200].decode(errors="replace")


def while_greeting(srv, fn):
    """Run fn in a thread while SMTP clients connect one after another, each reading the 220: (fn's result,
    the longest greeting wait in ms, None when one never came). A blocked loop shows as a long wait."""
    out = {}
    t = threading.Thread(target=lambda: out.update(r=fn()))
    t.start()
    worst = 0.0
    while t.is_alive():
        g = greeting_ms(srv.port("smtp"))
        if g is None:
            worst = None
            break
        worst = max(worst, g)
        time.sleep(0.02)
    t.join()
    return out["r"], worst


def server(binary, work, name, *args):
    return Smtpfault(binary, work, ["--smtp", "127.0.0.1:0", "--submission", "off", "--smtps", "off", "--admin",
                                    "127.0.0.1:0", "--admin-token", TOKEN, "-q", *args], name=name).start()


def scenario_keys(binary, work):
    srv = server(binary, work, "keys")
    try:
        return timed_line(srv, ("{" + ",".join(f'"k{i}":1' for i in range(150000)) + ',"cmd":"ping"}\n').encode())
    finally:
        srv.stop()


def scenario_keys_token(binary, work):
    srv = server(binary, work, "keys_token")
    try:
        line = ('{"token":"' + TOKEN + '",' + ",".join(f'"k{i}":1' for i in range(300000)) + ',"cmd":"ping"}\n').encode()
        return timed_line(srv, line)
    finally:
        srv.stop()


def scenario_profile(binary, work):
    srv = server(binary, work, "profile")
    try:
        # One object of many keys, unknown ones and then a known one repeated: the shape whose key checks
        # were quadratic.
        keys = ",".join(f'"x{i}":1' for i in range(60000)) + "," + ",".join(['"name":"n"'] * 20000)
        line = ('{"token":"' + TOKEN + '","cmd":"profile.validate","profile":{' + keys + "}}\n").encode()
        return timed_line(srv, line, 80)
    finally:
        srv.stop()


def scenario_parked(binary, work):
    srv = server(binary, work, "parked")
    conns = []
    try:
        before = kib(srv.proc.pid, "VmRSS")
        fds_start = fds(srv)
        chunk = b'{"cmd":"ping","pad":"' + b"x" * (MIB - 22)
        for _ in range(40):
            s = connect(srv, "admin", timeout=5)
            s.setblocking(False)
            conns.append(s)
        for _ in range(8):
            for s in conns:
                try:
                    s.send(chunk)
                except OSError:
                    pass
        time.sleep(1)
        grown = kib(srv.proc.pid, "VmRSS") - before
        time.sleep(11)
        return {"rss_added_mib": mib(grown), "fds_after_12s": fds(srv), "fds_at_start": fds_start,
                "hwm_mib": mib(kib(srv.proc.pid, "VmHWM"))}
    finally:
        for s in conns:
            s.close()
        srv.stop()


def scenario_items(binary, work):
    srv = server(binary, work, "items")
    try:
        before = kib(srv.proc.pid, "VmHWM")
        line = b'{"cmd":"ping","a":[' + b",".join([b"1"] * 4_000_000) + b"]}\n"
        secs, answer = admin_line(srv, line)
        return {"bytes": len(line), "answered_s": round(secs, 3), "answer": answer[:80],
                "peak_added_mib": mib(kib(srv.proc.pid, "VmHWM") - before)}
    finally:
        srv.stop()


def scenario_inflight(binary, work):
    srv = server(binary, work, "inflight", "--max-message-size", "35M")
    conns = []
    try:
        before = kib(srv.proc.pid, "VmRSS")
        for _ in range(20):
            s = connect(srv, timeout=30)
            s.recv(512)
            s.sendall(b"EHLO big.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
            conns.append(s)
        body = b"z" * MIB
        refused = 0
        for s in conns:
            try:
                for _ in range(34):
                    s.sendall(body)
            except OSError:
                refused += 1
        time.sleep(1)
        return {"rss_added_mib": mib(kib(srv.proc.pid, "VmRSS") - before),
                "inflight_bytes": srv.admin("stats", token=TOKEN).get("capacity", {}).get("inflight_bytes"), "clients_cut": refused}
    finally:
        for s in conns:
            s.close()
        srv.stop()


def scenario_subscribers(binary, work):
    srv = server(binary, work, "subscribers")
    subs = []
    try:
        before = kib(srv.proc.pid, "VmRSS")
        for _ in range(20):
            s = connect(srv, "admin", timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(('{"token":"' + TOKEN + '","cmd":"events.subscribe"}\n').encode())
            subs.append(s)
        for _ in range(2000):
            with connect(srv) as c:
                c.sendall(b"EHLO events.example\r\n" + b"NOOP\r\n" * 20 + b"QUIT\r\n")
                while c.recv(65536):
                    pass
        return {"rss_added_mib": mib(kib(srv.proc.pid, "VmRSS") - before), "hwm_mib": mib(kib(srv.proc.pid, "VmHWM"))}
    finally:
        for s in subs:
            s.close()
        srv.stop()


def scenario_abandoned(binary, work):
    srv = server(binary, work, "abandoned")
    try:
        srv.admin("profile.load", token=TOKEN, profile={"rules": [{"when": {"stage": "mail"}, "do": {"delay": "1h"}}]})
        conns = []
        for _ in range(200):
            s = connect(srv)
            s.recv(512)
            s.sendall(b"EHLO gone.example\r\nMAIL FROM:<a@example.org>\r\n")
            conns.append(s)
        time.sleep(1)
        live_before = srv.admin("stats", token=TOKEN)["sessions"]["live"]
        for s in conns:
            s.close()
        time.sleep(3)
        live_after = srv.admin("stats", token=TOKEN)["sessions"]["live"]
        return {"live_during_delay": live_before, "live_3s_after_they_left": live_after,
                "fds": fds(srv)}
    finally:
        srv.stop()


SCENARIOS = {"keys": scenario_keys, "keys_token": scenario_keys_token, "profile": scenario_profile, "parked": scenario_parked, "items": scenario_items,
             "inflight": scenario_inflight, "subscribers": scenario_subscribers, "abandoned": scenario_abandoned}


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("smtpfault")
    ap.add_argument("--only", default="", help="comma-separated scenarios")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    raise_nofile()
    binary = os.path.abspath(args.smtpfault)
    only = [x for x in args.only.split(",") if x] or list(SCENARIOS)
    results = {}
    with tempfile.TemporaryDirectory(prefix="smtpfault-hostile-") as work:
        for name in only:
            log(f"scenario {name}")
            results[name] = SCENARIOS[name](binary, work)
            log(f"  {json.dumps(results[name])}")
    print_table(["scenario", "figures"], [[k, json.dumps(v)] for k, v in results.items()])
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    run_main(main, "hostile")
