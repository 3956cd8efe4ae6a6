"""
`smtpfault check FILE...` and `--profile` with files that are not valid profiles (docs/profiles.md): every
error is reported at once, each with the file and its JSON path; nothing invalid is ever put in force.
"""

import json

import pytest

from conftest import Server, run_binary, sanitizer_reports

STAGES = ("connect, greeting, ehlo, starttls, tls_handshake, auth, mail, rcpt, data, data_end, rset, vrfy, noop, "
          "help, quit, unknown")

VALID = {
    "flaky.json": {"name": "flaky-rcpt",
                   "description": "The first two RCPTs to *@example.com fail with 451, then everything succeeds",
                   "rules": [{"when": {"stage": "rcpt", "rcpt": "*@example.com", "times": 2},
                              "do": {"reply": "451 4.3.0 Temporary failure, try again"}}]},
    "empty.json": {},
    "everything.json": {
        "name": "every section", "comment": "every object may hold a comment", "seed": 7, "magic": False,
        "server": {"hostname": "smtp.gmail.com", "greeting": "ESMTP a1 - gsmtp", "size": "10M",
                   "max_recipients": 100, "users": [{"user": "app@example.com", "password": "pw"}],
                   "auth_mechanisms": ["PLAIN", "LOGIN"], "comment": "c"},
        "ehlo": {"remove": ["PIPELINING", "CHUNKING"], "comment": "c"},
        "tls": {"certificate": "expired", "versions": ["1.2", "1.3"], "comment": "c"},
        "limits": {"connections_per_client": 2, "messages_per_connection": {"max": 5, "reply": "452 4.5.3 Enough"},
                   "messages_per_minute": {"max": 10, "per": "server", "reply": "454 Throttling failure: Maximum "
                                           "sending rate exceeded."}, "comment": "c"},
        "rules": [
            {"name": "slow", "comment": "c", "when": {"stage": "greeting", "comment": "c"},
             "do": {"delay": "1.5s", "comment": "c"}},
            {"when": {"stage": ["mail", "rcpt"], "listener": ["smtp", "submission"], "client": ["127.0.0.1",
                      "10.0.0.0/8", "::1/128"], "helo": "*", "sender": ["", "*@example.org"], "tls": False,
                      "auth": False, "every": 2, "count": "connection", "probability": 0.5, "after": 250,
                      "until": "2m"},
             "do": {"reply": ["451-4.3.0 first line", "second line"], "drip": 100, "close": "reset"}},
            {"when": {"stage": "rcpt"}, "do": {"greylist": "30s", "reply": "450 4.2.0 Greylisted"}},
            {"when": {"stage": "data_end", "rcpt": "*@example.com", "nth": 3}, "do": {"discard": True}},
            {"when": {"stage": "data_end"}, "do": {"truncate": 5}},
            {"when": {"stage": "unknown"}, "do": {"raw": "99 bad code\r\n"}},
            {"when": {"stage": "noop"}, "do": {"hang": True}},
            {"when": {"stage": "tls_handshake", "listener": "smtps"}, "do": {"tls_alert": "handshake_failure"}},
            {"when": {"stage": "connect", "listener": "smtp", "until": "10s"}, "do": {"refuse": True}},
        ]},
}


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=1), encoding="utf-8")
    return path


def check(tmp_path, *names):
    proc = run_binary(["check", *[str(tmp_path / n) for n in names]])
    return proc, proc.stderr.splitlines()


def errors_of(lines, path):
    """The error lines of one file, without the "FILE: " in front."""
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in lines), lines
    return [line[len(prefix):] for line in lines]


def test_check_valid_files(tmp_path):
    for name, content in VALID.items():
        write(tmp_path, name, content)
    proc, errors = check(tmp_path, *VALID)
    assert proc.returncode == 0 and errors == [], proc.stderr
    assert proc.stdout.splitlines() == [f"{tmp_path}/flaky.json: ok (\"flaky-rcpt\", 1 rule)",
                                        f"{tmp_path}/empty.json: ok (unnamed, 0 rules)",
                                        f"{tmp_path}/everything.json: ok (\"every section\", 9 rules)"]


def test_check_the_documented_broken_example(tmp_path):
    """The example of docs/profiles.md: four errors, all reported, in the documented words."""
    path = write(tmp_path, "broken.json", {"rules": [
        {"when": {"stage": "rpct"}, "do": {"reply": "550 5.1.1 User unknown"}},
        {"when": {"stage": "mail"}, "do": {"greylist": "30s"}},
        {"whne": {"stage": "rcpt"}, "do": {"reply": "550 5.1.1 User unknown"}},
    ]})
    proc, lines = check(tmp_path, "broken.json")
    assert proc.returncode == 1 and proc.stdout == ""
    assert errors_of(lines, path) == [
        f'rules[0].when.stage: unknown stage "rpct" (expected one of: {STAGES})',
        "rules[1].do.greylist: does not apply at stage mail (only at: rcpt)",
        "rules[2].whne: unknown key (expected one of: name, comment, when, do)",
        'rules[2].when: missing: every rule has a "when" (at least its stage)',
    ]


def test_check_reports_every_error_with_its_path(tmp_path):
    path = write(tmp_path, "many.json", {
        "bogus": 1, "magic": "yes", "server": {"size": "lots"}, "limits": {"connections_per_client": -1},
        "ehlo": {"remove": ["PIPELINING", "TURBO"]}, "tls": {"versions": ["1.1", "1.3"]},
        "rules": [
            {"when": {"stage": "connect", "rcpt": "*"}, "do": {"reply": "554 5.7.1 No"}},
            {"when": {"stage": "rcpt"}, "do": {"hang": True, "reply": "550 5.1.1 x"}},
            {"when": {"stage": "rcpt", "probability": 2}, "do": {"reply": "55 x"}},
            {"when": {"stage": "rcpt", "count": "connection"}, "do": {"reply": "550 5.1.1 x"}},
            {"when": {"stage": "mail", "after": "5s", "until": "2s"}, "do": {"discard": True}},
            {"when": {"stage": "connect", "client": "127.0.0.1"}, "do": {"refuse": True}},
            {"when": {"stage": "data_end"}, "do": {"discard": True, "close": True}},
            {"when": {"stage": ["rcpt", "bogus"]}, "do": {}},
            {"when": {"stage": "rcpt", "client": "300.1.1.1"}, "do": {"delay": "5 minutes"}},
        ]})
    proc, lines = check(tmp_path, "many.json")
    assert proc.returncode == 1
    assert errors_of(lines, path) == [
        "bogus: unknown key (expected one of: name, description, seed, magic, server, ehlo, tls, limits, rules, "
        "comment)",
        "magic: expected true or false, got a string",
        'server.size: expected a size in bytes from 1 to 1099511627776 (a number, or a string such as "10M")',
        'ehlo.remove[1]: unknown EHLO capability "TURBO" (expected one of: PIPELINING, SIZE, STARTTLS, AUTH, '
        "ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING, BINARYMIME, HELP)",
        "tls.versions: the versions must be contiguous (TLS allows a range, not a set)",
        "limits.connections_per_client: expected a whole number from 1 to 1000000, got a number out of range",
        "rules[0].when.rcpt: the recipient is not known at stage connect, so the rule could never fire there "
        "(known at: rcpt, data, data_end)",
        'rules[1].do: "hang" cannot be combined with "reply"',
        "rules[2].when.probability: expected a number from 0 to 1",
        'rules[2].do.reply: a reply starts with a code from 200 to 599, then a space ("550 5.1.1 User unknown"), '
        'got "55 x"',
        "rules[3].when.count: only means something with nth, every or times",
        'rules[4].when.until: must be later than "after"',
        "rules[4].do.discard: does not apply at stage mail (only at: data_end)",
        "rules[5].when.client: refuse and blackhole act on the listener before any connection exists: their rule "
        "may only use stage, listener, after and until",
        'rules[6].do: "discard" cannot be combined with "close"',
        f'rules[7].when.stage[1]: unknown stage "bogus" (expected one of: {STAGES})',
        "rules[7].do: no action (expected at least one of: delay, reply, raw, close, hang, ...)",
        'rules[8].when.client: expected an IP address or a CIDR block ("127.0.0.1", "10.0.0.0/8", "::1/128"), '
        'got "300.1.1.1"',
        'rules[8].do.delay: expected a duration: milliseconds as a number, or a string such as "250ms", "1.5s", '
        '"2m" (at most 24h)',
    ]


@pytest.mark.parametrize("text, position", [
    ('{"rules": [\n  {"when": {"stage": "rcpt"},\n   "do": {"reply": "550 x"}}\n  {"x": 1}\n]}\n', "line 4, column 3"),
    ('{"a": 1,}', "line 1, column 9"),
    ('{"a" 1}', "line 1, column 6"),
    ('{"rules": [}', "line 1, column 12"),
    ('{\n\n  "name": "unterminated', "line 3, column "),  # the column of a bad string is not exact
    ("", "line 1, column 1"),
])
def test_check_invalid_json_with_position(tmp_path, text, position):
    path = write(tmp_path, "bad.json", text)
    proc, lines = check(tmp_path, "bad.json")
    assert proc.returncode == 1
    (error,) = errors_of(lines, path)
    assert error.startswith(f"invalid JSON at {position}"), error


def test_check_duplicate_keys(tmp_path):
    path = write(tmp_path, "dup.json", '{"name": "a", "rules": [{"when": {"stage": "rcpt", "stage": "mail"}, '
                                       '"do": {"reply": "550 5.1.1 x"}}], "name": "b"}')
    proc, lines = check(tmp_path, "dup.json")
    assert proc.returncode == 1
    assert sorted(errors_of(lines, path)) == ["name: duplicate key", "rules[0].when.stage: duplicate key"]


def test_check_missing_file_and_a_mix(tmp_path):
    write(tmp_path, "good.json", VALID["flaky.json"])
    write(tmp_path, "bad.json", {"rules": [{"when": {"stage": "rcpt"}}]})
    proc, lines = check(tmp_path, "good.json", "missing.json", "bad.json")
    # Every file is checked; one bad file makes the exit code 1.
    assert proc.returncode == 1
    assert proc.stdout == f'{tmp_path}/good.json: ok ("flaky-rcpt", 1 rule)\n'
    assert lines == [f"{tmp_path}/missing.json: cannot read: no such file or directory",
                     f'{tmp_path}/bad.json: rules[0].do: missing: every rule has a "do" (what to do when it fires)']


def test_check_without_files_is_a_usage_error():
    proc = run_binary(["check"])
    assert proc.returncode == 2
    assert proc.stderr.startswith("Usage: smtpfault check FILE|NAME|DIR...\n"), proc.stderr


def start_refused(tmp_path, profile_path):
    """Run the server with --profile; it must refuse to start. Its exit code and stderr."""
    srv = Server(tmp_path / "server", args=("--profile", str(profile_path)))
    with pytest.raises(AssertionError, match="exited with 2 before listening"):
        srv.start()
    assert not srv.ports_file.exists()
    assert not sanitizer_reports(srv.log()), srv.log()
    return srv.returncode, srv.log()


def test_profile_option_with_an_invalid_file_refuses_to_start(tmp_path):
    path = write(tmp_path, "broken.json", {"rules": [
        {"when": {"stage": "rpct"}, "do": {"reply": "550 5.1.1 User unknown"}},
        {"when": {"stage": "mail"}, "do": {"greylist": "30s"}}]})
    code, log = start_refused(tmp_path, path)
    assert code == 2
    assert log.splitlines() == [
        f"smtpfault: --profile {path} is not valid:",
        f'{path}: rules[0].when.stage: unknown stage "rpct" (expected one of: {STAGES})',
        f"{path}: rules[1].do.greylist: does not apply at stage mail (only at: rcpt)",
    ]


@pytest.mark.parametrize("content", [None, "{not json"])
def test_profile_option_with_a_missing_or_unparsable_file(tmp_path, content):
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    code, log = start_refused(tmp_path, path)
    assert code == 2
    if content is None:
        assert log.splitlines() == [f"smtpfault: --profile {path}: no such file or shipped profile (see smtpfault "
                                    "profiles)"]
        return
    first, second = log.splitlines()
    assert first == f"smtpfault: --profile {path} is not valid:"
    assert second.startswith(f"{path}: invalid JSON at line 1, column "), second


def test_profile_in_force_is_logged_at_start(tmp_path, server_factory):
    path = write(tmp_path, "p.json", VALID["flaky.json"])
    srv = server_factory("--profile", str(path))
    srv.wait_for_log(r'info: profile "flaky-rcpt" in force: 1 rule')
