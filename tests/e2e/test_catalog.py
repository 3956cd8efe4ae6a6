"""
The error catalog's matrix: every shipped profile (faults/profiles/*.json) against every client.

For each case of catalog_cases.py a server is started with `--profile NAME` (the shipped name, found by the
binary itself); before each client run the profile is loaded again by name through the admin socket
(profile.load {"name": NAME}), so that counters, rate limits and the greylist start fresh. The client then
sends one message with the case's settings (listener, TLS verified against the suite's CA, credentials,
timeouts) and what it reports is recorded: Nodemailer's error, PHPMailer's ErrorInfo or exception, smtplib's
exception, swaks' exit code and error lines.

Cases run side by side (each on its own server, its clients one after the other), so the whole matrix takes
about as long as its slowest cases. What the clients printed, normalized (ports, message IDs and paths
replaced by stable text), is written to a JSON file: $SMTPFAULT_CATALOG_OBSERVED, else catalog-observed.json
in pytest's base temporary directory. test_errors_md_is_current then checks that docs/errors.md is what
gen_errors_md.py renders from the cases, the profiles and that file; to update the document after a change:

    SMTPFAULT_UPDATE_DOCS=1 python3 -m pytest -q tests/e2e/test_catalog.py
"""

import concurrent.futures
import json
import os
import platform
import re
import shutil
import smtplib
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import gen_client_checks
import gen_errors_md
from catalog_cases import CASES, CLIENTS, Re
from harness import clients as harness_clients
from harness.clients import PHPMAILER_AUTOLOAD, SWAKS, tls_context
from harness.env import CLIENTS_DIR, REPO_ROOT, run_binary, smtpfault_bin
from harness.pki import ca_file, suite_pki
from harness.server import Server, address
from harness.smtp import RawClient

PROFILES_DIR = REPO_ROOT / "faults" / "profiles"
ERRORS_MD = REPO_ROOT / "docs" / "errors.md"

# The listeners' default addresses: observed ports are shown as these, as a user running
# `smtpfault --profile NAME` with its defaults would see them.
DEFAULT_PORTS = {"smtp": 2525, "submission": 2587, "smtps": 2465, "admin": 2580}

WORKERS = 8  # cases at a time: most of the matrix waits on timeouts, not on the CPU
HELO = "client.catalog.test"


# -- which clients are here --------------------------------------------------------------------------------


def available_clients():
    """client -> None when it can run here, else why not."""
    node = shutil.which("node")
    php = shutil.which("php")
    nodemailer = None
    if node is None:
        nodemailer = "node is not installed"
    elif not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
        nodemailer = "nodemailer is not installed in tests/clients/node_modules (npm ci)"
    phpmailer = None if php and PHPMAILER_AUTOLOAD.exists() else "php or Debian's libphp-phpmailer is missing"
    return {
        "nodemailer": nodemailer,
        "phpmailer": phpmailer,
        "phpmailer-exceptions": phpmailer,
        "smtplib": None,
        "swaks": None if os.path.exists(SWAKS) else "swaks is not installed",
    }


# -- the admin socket ----------------------------------------------------------------------------------------


def admin(srv, request, timeout=10.0):
    """One admin request (a dict) over a fresh connection (harness.admin.AdminClient); the response dict."""
    with srv.admin(timeout=timeout) as client:
        return client.request(dict(request, id=1))


# -- the message ------------------------------------------------------------------------------------------------


def message_body(case, client):
    text = f"A message from {client} for the smtpfault catalog ({case.profile}).\n"
    if case.body_size > len(text):
        line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n"
        text += line * ((case.body_size - len(text)) // len(line) + 1)
    return text


def subject(case):
    return f"smtpfault catalog: {case.profile}"


# -- clients ------------------------------------------------------------------------------------------------------


def tls_mode(case):
    """The harness' tls= for the case: None, "starttls" or "implicit"."""
    return None if case.tls == "none" else case.tls


def run_nodemailer(case, srv, client):
    ms = int(case.timeout * 1000)
    transport = {"ignoreTLS": case.tls == "none", "connectionTimeout": ms, "greetingTimeout": ms, "socketTimeout": ms}
    if case.auth:
        transport["auth"] = {"user": case.auth[0], "pass": case.auth[1]}
    message = {"from": case.sender, "to": list(case.recipients), "subject": subject(case),
               "text": message_body(case, client)}
    out = harness_clients.nodemailer(srv, message, listener=case.listener, tls=tls_mode(case),
                                     bound=case.timeout * 6 + 30, **transport)
    if out.get("ok"):
        return {"ok": True, "response": out.get("response"), "accepted": out.get("accepted"),
                "rejected": out.get("rejected")}
    return {"ok": False, "code": out.get("code"), "responseCode": out.get("responseCode"),
            "response": out.get("response"), "command": out.get("command"), "message": out.get("message")}


# PHPMailer's debug lines that say what went wrong (ErrorInfo often does not).
PHP_DEBUG_ERROR = re.compile(r"^(SMTP ERROR: |SMTP Error: |Connection failed|Connection: Failed|SMTP NOTICE: )")


def run_phpmailer(case, srv, client):
    options = {"exceptions": client == "phpmailer-exceptions", "autoTLS": False,
               "timeout": max(1, int(case.timeout)), "timelimit": max(1, int(case.timeout))}
    if case.tls != "none":
        options["ssl"] = {"verify_peer": True, "verify_peer_name": True, "peer_name": "localhost",
                          "allow_self_signed": False}
    if case.auth:
        options["auth"] = {"user": case.auth[0], "password": case.auth[1]}
    messages = [{"from": case.sender, "to": list(case.recipients), "subject": subject(case),
                 "body": message_body(case, client)}]
    out = harness_clients.phpmailer(srv, messages, listener=case.listener, tls=tls_mode(case),
                                    bound=case.timeout * 8 + 30, **options)
    (r,) = out["results"]
    debug = []
    for line in out.get("debug", []):
        for part in line.split("\r\n"):
            printable = all(ch.isprintable() or ch in "\t\n" for ch in part)
            if printable and PHP_DEBUG_ERROR.match(part) and part not in debug and part != r["errorInfo"]:
                debug.append(part)
    obs = {"ok": r["ok"], "errorInfo": r["errorInfo"], "debug": debug}
    if client == "phpmailer":
        obs["returned"] = r["returned"]
    else:
        exc = r["exception"]
        obs["exception"] = exc["class"] if exc else None
        obs["message"] = exc["message"] if exc else None
    return obs


def exception_name(e):
    t = type(e)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def run_smtplib(case, srv, client):
    msg = (f"From: <{case.sender}>\r\nTo: " + ", ".join(f"<{r}>" for r in case.recipients)
           + f"\r\nSubject: {subject(case)}\r\n\r\n" + message_body(case, client).replace("\n", "\r\n"))
    try:
        conn = harness_clients.smtplib_client(srv, case.listener, tls=tls_mode(case), context=tls_context(),
                                              timeout=case.timeout, local_hostname=HELO)
        try:
            if case.auth:
                conn.login(*case.auth)
            refused = conn.sendmail(case.sender, list(case.recipients), msg.encode())
            try:
                conn.quit()
            except smtplib.SMTPServerDisconnected:
                pass
        finally:
            conn.close()
    except Exception as e:  # what the user's code would catch
        obs = {"ok": False, "exception": exception_name(e), "str": str(e)}
        if isinstance(e, smtplib.SMTPResponseException):
            obs["code"] = e.smtp_code
            obs["text"] = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) \
                else str(e.smtp_error)
        if isinstance(e, smtplib.SMTPRecipientsRefused):
            obs["refused"] = {k: [c, t.decode("utf-8", "replace")] for k, (c, t) in e.recipients.items()}
        return obs
    return {"ok": True, "refused": {k: [c, t.decode("utf-8", "replace")] for k, (c, t) in refused.items()}}


def run_swaks(case, srv, client):
    args = ["--helo", HELO, "--from", case.sender, "--to", ",".join(case.recipients), "--header",
            f"Subject: {subject(case)}", "--body", message_body(case, client)]
    if case.auth:
        args += ["--auth", "--auth-user", case.auth[0], "--auth-password", case.auth[1]]
    proc = harness_clients.swaks(srv, *args, listener=case.listener, tls=tls_mode(case), timeout=case.timeout,
                                 bound=case.timeout * 8 + 30)
    lines = (proc.stdout + proc.stderr).splitlines()
    # swaks marks its own errors with "***" and the server's error replies with "<**" ("<~*" under TLS).
    errors = [l.rstrip() for l in lines if l.startswith("***") or re.match(r"^<[~ ]?\*", l)]
    return {"ok": proc.returncode == 0, "exit": proc.returncode, "errors": errors}


RUNNERS = {
    "nodemailer": run_nodemailer,
    "phpmailer": run_phpmailer,
    "phpmailer-exceptions": run_phpmailer,
    "smtplib": run_smtplib,
    "swaks": run_swaks,
}


# -- normalizing what the clients printed -------------------------------------------------------------------


def normalizer(srv):
    """A function that makes observed text stable: real ports become the defaults, IDs and paths placeholders."""
    ports = {str(srv.listener(name)["port"]): str(DEFAULT_PORTS[name]) for name in DEFAULT_PORTS}
    ca = ca_file()
    pki = str(suite_pki())

    def text(s):
        s = s.replace(ca, "ca.pem").replace(pki, "pki")
        s = re.sub(r"(?<![\d.])(127\.0\.0\.1|localhost)([:.,\s]|\]:|port )(\d{2,5})\b",
                   lambda m: m.group(1) + m.group(2) + ports.get(m.group(3), m.group(3)), s)
        s = re.sub(r"\bport (\d{2,5})\b", lambda m: "port " + ports.get(m.group(1), m.group(1)), s)
        s = re.sub(r"\bqueued as [0-9A-F]{16,}\b", "queued as <id>", s)
        s = re.sub(r"\b[0-9A-F]{12,16}:error:", "error:", s)  # OpenSSL's thread ID in Node's TLS errors
        return s

    def value(v):
        if isinstance(v, str):
            return text(v)
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items()}
        return v

    return value


# -- running a case --------------------------------------------------------------------------------------------


def stored_count(srv):
    return len(srv.message_ids())


# Findings of the retry story (client.report); the others are each session's (sessions.get).
STORY_FINDINGS = {"retry-4xx", "retried-5xx", "hammering", "greylist-retry-too-soon", "connections-past-limit",
                  "sent-after-rate-limit"}
FINDINGS_SETTLE = 10.0  # seconds for the client's last session to close on the server once the client is done


def client_findings(srv, after_session, exclude):
    """The finding ids of the client's run: its sessions' (those after after_session, but the exclude
    addresses') and its retry story's, sorted. Waits (bounded) for its sessions to close first."""
    def mine(sessions):
        return [s for s in sessions if s["id"] > after_session and s["client"] not in exclude]

    deadline = time.monotonic() + FINDINGS_SETTLE
    while mine(admin(srv, {"cmd": "sessions.list"})["live"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    ids = set()
    for s in mine(admin(srv, {"cmd": "sessions.list"})["recent"]):
        got = admin(srv, {"cmd": "sessions.get", "session": s["id"]})
        ids |= {f["id"] for f in got["session"]["findings"]} if got.get("ok") else set()
    report = admin(srv, {"cmd": "client.report", "client": "127.0.0.1"})
    if report.get("ok"):
        ids |= {f["id"] for f in report["report"]["findings"]} & STORY_FINDINGS
    return sorted(ids)


def last_session(srv):
    lists = admin(srv, {"cmd": "sessions.list"})
    return max([s["id"] for s in lists["live"] + lists["recent"]], default=0)


def run_case(case, workdir, clients):
    """Every available client against one server with the case's profile; {client: observation}, problems."""
    srv = Server(workdir, args=["--profile", case.profile, "--drain-timeout", "1"])
    results, problems = {}, []
    srv.start()
    try:
        norm = normalizer(srv)
        for client in clients:
            admin(srv, {"cmd": "reset"})  # each client's story starts afresh (the profile is loaded below)
            after = last_session(srv)
            loaded = admin(srv, {"cmd": "profile.load", "name": case.profile})
            if not loaded.get("ok"):
                problems.append(f"profile.load {case.profile}: {loaded}")
                break
            holder, exclude = None, set()
            before = stored_count(srv)
            started = time.monotonic()
            try:
                if case.hold_connection:
                    holder = RawClient(*address(srv, case.listener))
                    holder.reply()  # the greeting: this connection is counted before the client's
                    exclude.add(holder.local_address())
                obs = RUNNERS[client](case, srv, client)
            except Exception as e:  # the harness failed, not the client: report it with the case
                obs = {"ok": False, "harness_error": f"{exception_name(e)}: {e}"}
            finally:
                if holder is not None:
                    holder.close()
            obs["seconds"] = round(time.monotonic() - started, 1)
            obs["stored"] = stored_count(srv) - before  # a kept message is on disk before its 250 is sent
            obs["findings"] = client_findings(srv, after, exclude)
            results[client] = norm(obs)
    finally:
        try:
            srv.finish()
        except AssertionError as e:
            problems.append(str(e))
    return results, problems


def tool_versions():
    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    versions = {"python": platform.python_version(), "openssl (python)": ssl.OPENSSL_VERSION}
    if shutil.which("node"):
        versions["node"] = first_line(["node", "--version"])
        pkg = CLIENTS_DIR / "node_modules" / "nodemailer" / "package.json"
        if pkg.exists():
            versions["nodemailer"] = json.loads(pkg.read_text())["version"]
    if shutil.which("php"):
        versions["php"] = first_line(["php", "-r", "echo PHP_VERSION;"])
        versions["phpmailer"] = first_line(["php", "-r", f"require '{PHPMAILER_AUTOLOAD}'; "
                                            "echo PHPMailer\\PHPMailer\\PHPMailer::VERSION;"])
    if os.path.exists(SWAKS):
        versions["swaks"] = first_line([SWAKS, "--version"])
    return versions


def observed_path(tmp_path_factory):
    env = os.environ.get("SMTPFAULT_CATALOG_OBSERVED")
    return Path(env) if env else tmp_path_factory.getbasetemp() / "catalog-observed.json"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """Run every case once (side by side) and write the observations; {profile: {client: obs}}, problems."""
    availability = available_clients()
    clients = [c for c in CLIENTS if availability[c] is None]
    base = tmp_path_factory.mktemp("catalog")
    suite_pki()  # once, before the threads
    started = time.monotonic()
    results, problems = {}, {}
    only = [x for x in os.environ.get("SMTPFAULT_CATALOG_ONLY", "").split(",") if x]  # while developing a case
    cases = [c for c in CASES if not only or c.profile in only]
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {pool.submit(run_case, case, base / case.profile, clients): case for case in cases}
        for fut in concurrent.futures.as_completed(futures):
            case = futures[fut]
            try:
                results[case.profile], problems[case.profile] = fut.result()
            except Exception as e:
                results[case.profile], problems[case.profile] = {}, [f"{exception_name(e)}: {e}"]
    observed = {
        "comment": "written by tests/e2e/test_catalog.py; docs/errors.md is rendered from it by gen_errors_md.py",
        "complete": len(clients) == len(CLIENTS) and len(cases) == len(CASES) and not any(problems.values()),
        "versions": tool_versions(),
        "seconds": round(time.monotonic() - started),
        "cases": {c.profile: results.get(c.profile, {}) for c in CASES},
    }
    path = observed_path(tmp_path_factory)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(observed, indent=2, ensure_ascii=False) + "\n")
    return {"observed": observed, "path": path, "problems": problems, "availability": availability}


# -- the tests -------------------------------------------------------------------------------------------------


def field_matches(expected, value):
    if isinstance(expected, Re):
        return expected.matches(value)
    return expected == value


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("case", CASES, ids=[c.profile for c in CASES])
def test_client_reports_the_error(matrix, case, client):
    why_not = matrix["availability"][client]
    if why_not:
        pytest.skip(why_not)
    if case.profile not in matrix["problems"]:
        pytest.skip("not run (SMTPFAULT_CATALOG_ONLY)")
    assert not matrix["problems"][case.profile], "\n".join(matrix["problems"][case.profile])
    obs = matrix["observed"]["cases"][case.profile].get(client)
    assert obs is not None, f"no observation for {client}"
    assert "harness_error" not in obs, obs["harness_error"]
    expected = dict(case.expect.get(client, {}))
    expected.setdefault("stored", case.stored)
    assert case.expect.get(client), f"no expectation for {client}; observed:\n{json.dumps(obs, indent=2)}"
    wrong = {k: obs.get(k) for k, v in expected.items() if not field_matches(v, obs.get(k))}
    assert not wrong, (f"{client} against {case.profile}: fields differ from the expectation {wrong!r}\n"
                       f"expected {expected!r}\nobserved {json.dumps(obs, indent=2, ensure_ascii=False)}")


def test_every_profile_has_a_case():
    files = sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
    cases = [c.profile for c in CASES]
    assert len(cases) == len(set(cases)), "a profile has two cases"
    assert sorted(cases) == files, f"profiles without a case: {sorted(set(files) - set(cases))}; " \
                                   f"cases without a profile: {sorted(set(cases) - set(files))}"


def test_profiles_check_and_list():
    files = sorted(PROFILES_DIR.glob("*.json"))
    check = run_binary(["check", *map(str, files)])
    assert check.returncode == 0, check.stdout + check.stderr
    for f in files:
        profile = json.loads(f.read_text())
        assert profile["name"] == f.stem, f"{f.name}: name {profile['name']!r}"
        assert len(profile.get("description", "")) > 80, f"{f.name}: describe the symptom, cause and source"
    listed = run_binary(["profiles"], check_sanitizers=True)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    assert names == [f.stem for f in files], listed.stdout


def test_ctl_load_every_profile(server_factory):
    """The documented `smtpfault ctl load faults/profiles/NAME.json` puts each profile in force."""
    srv = server_factory()
    admin_addr = srv.listener("admin")["address"]
    for f in sorted(PROFILES_DIR.glob("*.json")):
        proc = subprocess.run([str(smtpfault_bin()), "ctl", "--admin", admin_addr, "load", str(f)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"ctl load {f.name}: {proc.stdout}{proc.stderr}"
        got = admin(srv, {"cmd": "profile.get"})
        assert got["name"] == f.stem, got
    assert admin(srv, {"cmd": "reset"})["ok"]


# What a client reports whatever its version: the outcome, codes, the command or stage, error classes, exit
# codes, what was stored. Messages, debug lines and exception texts follow the client's version (and its
# runtime's: Node's OpenSSL words a TLS error its own way).
VERSION_INDEPENDENT = ("ok", "code", "responseCode", "command", "returned", "exception", "exit", "stored")


def test_errors_md_is_current(matrix):
    """docs/errors.md is the rendering of the recorded run (gen_errors_md.RECORDED), and this run agrees with
    that record: in full when the client versions are the recorded ones, else in what no version changes."""
    observed = matrix["observed"]
    if not observed["complete"]:
        missing = {c: why for c, why in matrix["availability"].items() if why}
        pytest.skip(f"the matrix is incomplete (missing clients {missing} or failed cases): "
                    "docs/errors.md is only checked against a complete run")
    profiles = gen_errors_md.load_profiles(PROFILES_DIR)
    if os.environ.get("SMTPFAULT_UPDATE_DOCS") == "1":
        gen_errors_md.write(observed, profiles)
        return
    recorded = json.loads(gen_errors_md.RECORDED.read_text())
    rendered = gen_errors_md.render(CASES, profiles, recorded)
    current = ERRORS_MD.read_text() if ERRORS_MD.exists() else ""
    update = (f"Update both with: python3 tests/e2e/gen_errors_md.py --observed {matrix['path']} --write\n"
              "(or SMTPFAULT_UPDATE_DOCS=1 when running this test).")
    if current != rendered:
        import difflib
        diff = "".join(list(difflib.unified_diff(current.splitlines(True), rendered.splitlines(True),
                                                 "docs/errors.md", "rendered", n=1))[:80])
        pytest.fail(f"docs/errors.md is not what gen_errors_md.py renders from {gen_errors_md.RECORDED.name}.\n"
                    f"{update} First differences:\n{diff}")
    if observed["versions"] == recorded["versions"]:
        now = gen_errors_md.render(CASES, profiles, observed)
        if now != rendered:
            import difflib
            diff = "".join(list(difflib.unified_diff(rendered.splitlines(True), now.splitlines(True),
                                                     "recorded", "this run", n=1))[:80])
            pytest.fail(f"with the recorded client versions, the clients now print something else.\n{update}\n"
                        f"First differences:\n{diff}")
        return
    differ = []
    for profile, clients in recorded["cases"].items():
        for client, was in clients.items():
            now = observed["cases"].get(profile, {}).get(client, {})
            for key in VERSION_INDEPENDENT:
                if was.get(key) != now.get(key):
                    differ.append(f"{profile} / {client}: {key} was {was.get(key)!r}, now {now.get(key)!r}")
    assert not differ, ("what must hold whatever the client versions differs from the record "
                        f"(recorded with {recorded['versions']}, this run {observed['versions']}):\n"
                        + "\n".join(differ[:40]))


def test_client_checks_md_is_current(matrix):
    """docs/client-checks.md ends with gen_client_checks.py's rendering of the recorded findings, and with the
    recorded client versions this run's findings are the recorded ones."""
    observed = matrix["observed"]
    if not observed["complete"]:
        pytest.skip("the matrix is incomplete: docs/client-checks.md is only checked against a complete run")
    doc = gen_client_checks.CLIENT_CHECKS_MD
    if os.environ.get("SMTPFAULT_UPDATE_DOCS") == "1":  # test_errors_md_is_current wrote both
        return
    recorded = json.loads(gen_errors_md.RECORDED.read_text())
    current = doc.read_text()
    assert current == gen_client_checks.render(recorded, current), (
        "docs/client-checks.md is not what gen_client_checks.py renders from the record: "
        "python3 tests/e2e/gen_client_checks.py")
    if observed["versions"] != recorded["versions"]:
        return
    differ = [f"{profile} / {client}: recorded {was.get('findings')}, now {now.get('findings')}"
              for profile, clients in recorded["cases"].items() for client, was in clients.items()
              for now in [observed["cases"].get(profile, {}).get(client, {})]
              if was.get("findings") != now.get("findings")]
    assert not differ, "with the recorded client versions, the findings differ:\n" + "\n".join(differ)
