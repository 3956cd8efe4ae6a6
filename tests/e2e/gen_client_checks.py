#!/usr/bin/env python3
"""
Render the generated part of docs/client-checks.md, what the real clients do, from the catalog's recorded
run (tests/e2e/catalog-recorded.json: each client's findings in each case, recorded by test_catalog.py).

    python3 tests/e2e/gen_client_checks.py     # gen_errors_md.py --write runs it too, after the record

Everything after MARKER in docs/client-checks.md is this rendering; the text before it is written by hand.
test_catalog.py checks that the document is the rendering of the record.
"""

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import catalog_cases  # noqa: E402  (after the path is set)

CLIENT_CHECKS_MD = REPO_ROOT / "docs" / "client-checks.md"
RECORDED = HERE / "catalog-recorded.json"
MARKER = "<!-- Below: rendered by tests/e2e/gen_client_checks.py from tests/e2e/catalog-recorded.json -->"



def severities():
    """finding id -> "violation", "risk" or "info", read from the server's own list (server/findings.h)"""
    header = (REPO_ROOT / "server" / "findings.h").read_text()
    return {m.group(1): m.group(2).lower() for m in re.finditer(r'X\(\w+, "([a-z0-9-]+)", FINDING_(\w+)', header)}


def cases_with(recorded, client, finding, ok=None):
    """The profiles whose run of client had finding (and ended ok, or not, when ok is given)."""
    out = []
    for profile, clients in recorded["cases"].items():
        obs = clients.get(client)
        if obs and finding in obs.get("findings", []) and (ok is None or bool(obs.get("ok")) == ok):
            out.append(profile)
    return out


def links(profiles, limit=6):
    shown = ", ".join(f"[{p}](errors.md#{p})" for p in profiles[:limit])
    return shown + (f" and {len(profiles) - limit} more" if len(profiles) > limit else "")


def summary_row(recorded, client):
    title = catalog_cases.CLIENT_TITLES[client]
    retried = cases_with(recorded, client, "retry-4xx")
    runs = [obs for clients in recorded["cases"].values() for c, obs in clients.items() if c == client]
    failed = [obs for obs in runs if not obs.get("ok")]
    quit_fail = cases_with(recorded, client, "no-quit", ok=False)
    quit_ok = cases_with(recorded, client, "no-quit", ok=True)
    early = cases_with(recorded, client, "early-talker")
    retry = f"yes: {links(retried)}" if retried else "no: the application retries"
    after_error = f"not in {len(quit_fail)} of {len(failed)} failed runs" if quit_fail else "yes"
    after_success = f"no ({len(quit_ok)} runs)" if quit_ok else "yes"
    talks = f"yes: {links(early)}" if early else "no"
    return f"| {title} | {retry} | {after_error} | {after_success} | {talks} |"


def render_generated(recorded):
    versions = recorded.get("versions", {})
    out = [
        MARKER,
        "",
        "## What the real clients do",
        "",
        "From the catalog's run of every shipped profile against every client ([errors.md](errors.md),",
        "`tests/e2e/test_catalog.py`), which records each client's findings in each case: its sessions' and its",
        "retry story's, the harness' own connections left out. Each client sends one message per case and",
        "nothing more, as an application's single `send` call does.",
        "",
        "Versions of this run: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "| client | retries a 4xx by itself | sends QUIT after an error | sends QUIT after success "
        "| speaks before the greeting |",
        "|---|---|---|---|---|",
    ]
    out += [summary_row(recorded, c) for c in catalog_cases.CLIENTS]
    out += [
        "",
        "QUIT is partly the application's: smtplib sends it only when `quit()` is called, and the catalog's code",
        "calls it after a successful send but only `close()`s after an exception (a `with smtplib.SMTP(...)`",
        "block sends QUIT either way). Nodemailer's `sendMail()` closes its connection when it settles, without",
        "QUIT (its `verify()` sends one); where it is not counted, the server had closed first or was still busy.",
        "None of them retries a `4xx` by itself: retrying is the application's (or its queue's) work, which",
        "`client.report` checks. Speaking before the greeting shows where a case delays it",
        "([slow-greeting](errors.md#slow-greeting), [slow-server](errors.md#slow-server)).",
        "",
        "Every finding of each client, with the cases it came from:",
        "",
    ]
    severity = severities()
    for client in catalog_cases.CLIENTS:
        found = {}
        for profile, clients in recorded["cases"].items():
            for f in clients.get(client, {}).get("findings", []):
                found.setdefault(f, []).append(profile)
        title = catalog_cases.CLIENT_TITLES[client]
        if not found:
            out.append(f"- **{title}**: none.")
            continue
        out.append(f"- **{title}**:")
        for f in sorted(found, key=lambda f: (severity.get(f) != "violation", f)):
            out.append(f"  - `{f}` ({severity.get(f, '?')}) in {len(found[f])} case{'s' if len(found[f]) != 1 else ''}: "
                       f"{links(found[f])}")
    return "\n".join(out) + "\n"


def render(recorded, current):
    """The whole document: the hand-written part of current (up to MARKER), then the rendering."""
    head = current.split(MARKER)[0].rstrip("\n") + "\n\n"
    return head + render_generated(recorded)


def write(recorded):
    """docs/client-checks.md with its generated part rendered from recorded"""
    CLIENT_CHECKS_MD.write_text(render(recorded, CLIENT_CHECKS_MD.read_text()))


if __name__ == "__main__":
    write(json.loads(RECORDED.read_text()))
