"""_report - assert_report: check a client.report against what a test expects, failing with the client's timeline."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Union

JSON = Dict[str, Any]
Retried4xx = Union[bool, Dict[str, Any]]


def assert_report(report: JSON, *, retried_4xx: Optional[Retried4xx] = None, retried_5xx: Optional[bool] = None,
                  gave_up_after_5xx: Optional[bool] = None, hammering: Optional[bool] = None,
                  violations: Optional[int] = None) -> JSON:
    """Raise AssertionError, its message the client's timeline, unless the report (client.report's) shows
    every expectation given: retried_4xx (True, False, or {"at_least": N, "backoff": bool}: one thread retried
    a 4xx N times, and its delays grew or not), retried_5xx, gave_up_after_5xx, hammering, violations (how many
    kinds). The report, when it passes."""
    problems: List[str] = []
    summary = report["summary"]
    if isinstance(retried_4xx, dict):
        unknown = set(retried_4xx) - {"at_least", "backoff"}
        if unknown:
            raise TypeError(f"retried_4xx takes at_least and backoff, not {', '.join(sorted(unknown))}")
        at_least = retried_4xx.get("at_least", 1)
        most = max((len(t["delays_ms"]) for t in report["threads"]), default=0)
        if most < at_least:
            problems.append(f"expected a 4xx retried at least {at_least} times in one thread, the most was {most}")
        backoff = retried_4xx.get("backoff")
        if backoff is not None and (summary["backoff"] is True) != backoff:
            problems.append("expected growing delays after each 4xx (backoff)" if backoff
                            else "expected no backoff, the delays grew")
    elif retried_4xx is not None and summary["retried_4xx"] != retried_4xx:
        problems.append("expected a retry after a 4xx" if retried_4xx else "expected no retry after a 4xx")
    if retried_5xx is not None and summary["retried_5xx"] != retried_5xx:
        problems.append("expected a retry after a 5xx" if retried_5xx
                        else "expected no retry after a 5xx: " + "; ".join(_repeated_5xx(report)))
    if gave_up_after_5xx is not None and summary["gave_up_after_5xx"] != gave_up_after_5xx:
        problems.append("expected a 5xx given up on (tried once)" if gave_up_after_5xx
                        else "expected no 5xx given up on")
    if hammering is not None and summary["hammering"] != hammering:
        problems.append("expected hammering" if hammering
                        else "expected no hammering (3 retries of a 4xx, each within 1 s)")
    if violations is not None and summary["violations"] != violations:
        found = [_finding(f) for f in report["findings"] if f["severity"] == "violation"]
        problems.append(f"expected {violations} violations, got {summary['violations']}"
                        + (": " + "; ".join(found) if found else ""))
    if problems:
        raise AssertionError("\n".join([_who(report) + ": " + problems[0], *problems[1:], describe(report)]))
    return report


def describe(report: JSON) -> str:
    """What the client did: each thread's tries (code, stage, delay before it), then its findings."""
    lines = [f"what {_who(report)} did ({report['sessions']} sessions):"]
    for t in report["threads"]:
        what = "connections" if t.get("connection") else f"{t['sender'] or '<>'} -> {t['rcpt'] or '(no rcpt)'}"
        tries = [(f"after {x['delay_ms']} ms " if x["delay_ms"] is not None else "") + f"{x['code']} at {x['stage']}"
                 for x in t["tries"]]
        backoff = {True: "yes", False: "no", None: "-"}[t["backoff"]]
        lines.append(f"  {what}: {', '.join(tries)} ({t['outcome']}; retries {t['retries']}, delays after 4xx "
                     f"{t['delays_ms']} ms, backoff {backoff}, hammering {'yes' if t['hammering'] else 'no'})")
    lines.extend("  finding " + _finding(f) for f in report["findings"])
    return "\n".join(lines)


def _who(report: JSON) -> str:
    return f"scope {report['scope']}" if "scope" in report else f"client {report['client']}"


def _finding(f: JSON) -> str:
    return f"{f['id']} ({f['severity']}, {f['reference']}) x{f['count']}, session {f['session']}: {_quoted(f['line'])}"


def _repeated_5xx(report: JSON) -> List[str]:
    out = []
    for t in report["threads"]:
        for before, x in zip(t["tries"], t["tries"][1:]):
            if before["code"] >= 500:
                out.append(f"{_quoted(before['reply'])} (at {before['stage']}) tried again after {x['delay_ms']} ms")
    return out


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
