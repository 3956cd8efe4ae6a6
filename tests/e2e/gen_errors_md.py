#!/usr/bin/env python3
"""
Render docs/errors.md, the error catalog, from three sources (standard library only):

  tests/e2e/catalog_cases.py   the cases: titles, symptoms, client settings, notes
  faults/profiles/*.json       the shipped profiles: each description names the cause and the sources
  an observations file         what every client printed in the matrix run of tests/e2e/test_catalog.py

    python3 tests/e2e/gen_errors_md.py --observed build/tests/e2e/catalog-observed.json --write

--write also keeps that run as tests/e2e/catalog-recorded.json, the record the document is rendered from,
and renders docs/client-checks.md's part from the record's findings (gen_client_checks.py).
Without --write the document goes to stdout; --check exits 1 when docs/errors.md differs from it.
test_catalog.py checks after the matrix that the document is the rendering of the record, and that its own
run agrees with the record: in full with the recorded client versions, and otherwise in what holds whatever
the version (codes, commands, error classes, exit codes), so a machine with other client versions (Debian's
Node 18 where the record has 20) still checks the document.
"""

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import catalog_cases  # noqa: E402  (after the path is set)
import gen_client_checks  # noqa: E402

DEFAULT_OBSERVED = REPO_ROOT / "build" / "tests" / "e2e" / "catalog-observed.json"
ERRORS_MD = REPO_ROOT / "docs" / "errors.md"
RECORDED = HERE / "catalog-recorded.json"
# The profile the introduction's commands name: concrete, so that a reader can paste them and
# tests/e2e/test_docs.py runs them as written.
EXAMPLE_PROFILE = "rcpt-550-user-unknown"


def load_profiles(directory):
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))}


def block(text):
    """A fenced block for client output (CRLF as LF, trailing space gone), indented under its list item."""
    lines = [line.rstrip() for line in str(text).replace("\r\n", "\n").strip("\n").split("\n")]
    fence = "````" if any(line.startswith("```") for line in lines) else "```"
    return ["", *[("  " + line).rstrip() for line in (fence + "text", *lines, fence)], ""]


def code(text):
    text = str(text)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def kept(obs):
    n = obs.get("stored", 0)
    return f"; the server kept {'the message' if n == 1 else f'{n} messages'}" if n else \
        "; the server kept nothing"


def describe(client, obs, debug_shown=()):
    """Markdown lines for one client's observation (PHPMailer debug lines in debug_shown are not repeated)."""
    title = catalog_cases.CLIENT_TITLES[client]
    out = []
    if client == "nodemailer":
        if obs["ok"]:
            extra = f", `info.rejected` {code(json.dumps(obs['rejected']))}" if obs.get("rejected") else ""
            out.append(f"- **{title}**: `sendMail()` resolves{extra}{kept(obs)}; `info.response`:")
            out += [*block(obs.get("response") or "")]
        else:
            rc = f", `err.responseCode` {obs['responseCode']}" if obs.get("responseCode") is not None else ""
            cmd = f", `err.command` {code(obs['command'])}" if obs.get("command") else ""
            out.append(f"- **{title}**: rejects with `err.code` {code(obs.get('code'))}{rc}{cmd}; `err.message`:")
            out += [*block(obs.get("message") or "")]
    elif client in ("phpmailer", "phpmailer-exceptions"):
        if obs["ok"]:
            out.append(f"- **{title}**: `send()` returns true{kept(obs)}.")
        else:
            sent = kept(obs) if obs.get("stored") else ""
            if client == "phpmailer":
                out.append(f"- **{title}**: `send()` returns false{sent}; `ErrorInfo`:")
                out += [*block(obs.get("errorInfo") or "")]
            else:
                out.append(f"- **{title}**: `send()` throws {code(obs.get('exception'))}{sent}; `getMessage()`:")
                out += [*block(obs.get("message") or "")]
            if obs.get("debug") and obs["debug"] != list(debug_shown):
                out.append("  Its debug output (`SMTPDebug` 2) says:")
                out += block("\n".join(obs["debug"]))
    elif client == "smtplib":
        if obs["ok"]:
            refused = obs.get("refused") or {}
            what = f"returns the refused recipients {code(json.dumps(refused))}" if refused else "returns `{}`"
            out.append(f"- **{title}**: `sendmail()` {what}{kept(obs)}.")
        else:
            out.append(f"- **{title}**: raises {code(obs.get('exception'))}; `str(e)`:")
            out += [*block(obs.get("str") or "")]
    elif client == "swaks":
        out.append(f"- **{title}**: exits {obs['exit']}{kept(obs) if obs['ok'] or obs.get('stored') else ''}"
                   + ("; its error lines:" if obs.get("errors") else "."))
        if obs.get("errors"):
            out += [*block("\n".join(obs["errors"]))]
    if out and out[-1] != "":
        out.append("")
    return out


def first_sentence(text):
    stop = text.find(". ")
    return text if stop < 0 else text[:stop + 1]


def render(cases, profiles, observed):
    groups = catalog_cases.GROUPS
    versions = observed.get("versions", {})
    out = [
        "# The error catalog",
        "",
        "<!-- Generated by tests/e2e/gen_errors_md.py from tests/e2e/catalog_cases.py, faults/profiles/*.json and",
        "     the observations of tests/e2e/test_catalog.py: edit those, run the test, regenerate. -->",
        "",
        "One shipped profile per error that applications meet when they send mail, named for what the user sees.",
        "Each entry says how users describe the error, what causes it, how to reproduce it, and what each client",
        "prints. Those outputs are not typed by hand: `tests/e2e/test_catalog.py` runs every profile against",
        "every client, and this page is rendered from that run (a test fails when the page differs from it).",
        "",
        f"Reproduce an error by starting the server with its profile, by name (here `{EXAMPLE_PROFILE}`; each",
        "entry below names its own):",
        "",
        "```sh",
        f"smtpfault --profile {EXAMPLE_PROFILE}",
        "```",
        "",
        "or put it in force on a running server through the admin socket ([admin.md](admin.md)); `ctl load` reads",
        "the file and sends it, `profile.load` with a name loads the shipped copy on the server's side:",
        "",
        "```sh",
        f"smtpfault ctl load faults/profiles/{EXAMPLE_PROFILE}.json",
        f"smtpfault ctl raw '{{\"cmd\": \"profile.load\", \"name\": \"{EXAMPLE_PROFILE}\"}}'",
        "smtpfault ctl reset        # back to the profile the server started with",
        "```",
        "",
        "`smtpfault profiles` lists them; [profiles.md](profiles.md) explains what a profile can do, so a",
        "profile here is also an example to start from.",
        "",
        "## How the outputs were taken",
        "",
        "Each client sends one message from `app@example.com` with its usual API: Nodemailer's `sendMail()`",
        "(`tests/clients/nodemailer-send.js`), PHPMailer's `send()` without and with exceptions",
        "(`tests/clients/phpmailer-send.php`), Python's `smtplib.SMTP`/`SMTP_SSL` with `starttls()`, `login()`,",
        "`sendmail()`, and swaks. TLS is verified against the test CA (`ca.pem`), STARTTLS is required where the",
        "case uses it. Timeouts are 10 s unless a case says less; for PHPMailer both `Timeout` and",
        "`SMTP::$Timelimit` are set, because `Timeout` alone does not bound the wait for a reply (`Timelimit`,",
        "300 s by default, does). Ports are shown as the listeners' defaults (smtp 2525, submission 2587, smtps",
        "2465).",
        "",
        "Versions of this run: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "Where a client hides the cause, the entry says so. The most common case: PHPMailer without exceptions",
        "reports almost every failure before the message is sent, a refused login included, as `SMTP connect()",
        "failed`, and with exceptions as `SMTP Error: Could not connect to SMTP host.`; the reason is only in its",
        "debug output (`SMTPDebug`), quoted below where it has one.",
        "",
        "## Contents",
        "",
    ]
    for title, _ in groups:
        out.append(f"- {title}: " + ", ".join(f"[{c.profile}](#{c.profile})" for c in cases if c.group == title))
    out.append("")
    for title, intro in groups:
        out += [f"## {title}", "", intro, ""]
        for c in (c for c in cases if c.group == title):
            profile = profiles[c.profile]
            obs = observed["cases"].get(c.profile, {})
            out += [f'<a id="{c.profile}"></a>', "", f"### {c.title}", ""]
            out += [f"**Users see:** {c.symptom}", ""]
            out += [f"**Cause:** {profile['description']}", ""]
            out += [f"**Profile:** `{c.profile}` (`smtpfault --profile {c.profile}`, or "
                    f"`smtpfault ctl load faults/profiles/{c.profile}.json`). Clients: {c.settings}.", ""]
            for client in catalog_cases.CLIENTS:
                if client in obs:
                    shown = obs.get("phpmailer", {}).get("debug", []) if client == "phpmailer-exceptions" else ()
                    out += describe(client, obs[client], shown)
            if c.note:
                out += [f"**Note:** {c.note}", ""]
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def write(observed, profiles, out=ERRORS_MD):
    """the document rendered from observed, and observed kept as the record it was rendered from"""
    out.write_text(render(catalog_cases.CASES, profiles, observed))
    # Without the run's timings, which change at every run and are not rendered.
    record = {k: v for k, v in observed.items() if k != "seconds"}
    record["cases"] = {profile: {client: {k: v for k, v in obs.items() if k != "seconds"}
                                 for client, obs in clients.items()}
                       for profile, clients in observed["cases"].items()}
    RECORDED.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    gen_client_checks.write(record)  # docs/client-checks.md renders the record's findings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--observed", type=Path, default=DEFAULT_OBSERVED, help="the matrix run's observations")
    ap.add_argument("--profiles", type=Path, default=REPO_ROOT / "faults" / "profiles")
    ap.add_argument("--out", type=Path, default=ERRORS_MD)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the document to --out")
    mode.add_argument("--check", action="store_true", help="exit 1 when --out differs from the rendering")
    args = ap.parse_args(argv)
    observed = json.loads(args.observed.read_text())
    if not observed.get("complete"):
        print(f"{args.observed}: the matrix run was incomplete (clients missing or cases failed)", file=sys.stderr)
        return 1
    profiles = load_profiles(args.profiles)
    text = render(catalog_cases.CASES, profiles, observed)
    if args.write:
        write(observed, profiles, args.out)
    elif args.check:
        if not args.out.exists() or args.out.read_text() != text:
            print(f"{args.out} is not what {args.observed} renders to", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
