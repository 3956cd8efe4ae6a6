"""The snippets of docs/admin.md (examples/admin-snippets/), run against the server, and the document itself
checked against the command table and the error codes.

Each snippet loads a profile that refuses the first RCPT to *@example.com with 451, waits for a message to
*@example.com, prints it and resets. The test plays the code under test: it sends once (refused), retries
(accepted), and then checks that the snippet saw that message and that the reset happened.
"""

import re
import shutil
import smtplib
import subprocess

import pytest

from conftest import REPO_ROOT, poll, queued_id

SNIPPETS = REPO_ROOT / "examples" / "admin-snippets"
DOC = REPO_ROOT / "docs" / "admin.md"


def interpreter(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.mark.parametrize("lang,argv", [("node", ["node", "node.js"]), ("python", ["/usr/bin/python3", "python.py"]),
                                       ("php", ["php", "php.php"])])
def test_snippet(admin_srv, admin_transport, lang, argv):
    srv = admin_srv
    address = f"unix:{srv.admin_unix}" if admin_transport == "unix" else "%s:%d" % srv.admin_address
    argv = [interpreter(argv[0]), *argv[1:]]
    proc = subprocess.Popen(argv, cwd=SNIPPETS, env={"PATH": "/usr/bin:/bin", "SMTPFAULT_ADMIN": address},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        with srv.admin() as admin:
            poll(lambda: admin.ok("profile.get")["name"] == "flaky-rcpt" or proc.poll() is not None, 20,
                 message="the snippet to load its profile")
            assert proc.poll() is None, proc.communicate()
            # The code under test: its first try is refused, the retry goes through.
            with srv.smtp(helo=f"{lang}.example") as client:
                with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                    client.sendmail("app@example.org", ["bob@example.com"], b"Subject: try 1\r\n\r\nx\r\n")
                assert refused.value.recipients["bob@example.com"][0] == 451
                client.mail("app@example.org")
                assert client.rcpt("bob@example.com")[0] == 250
                code, resp = client.data(b"Subject: try 2\r\n\r\nx\r\n")
                assert code == 250
            msg_id = queued_id(resp)
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, f"{lang} snippet exited {proc.returncode}: {err}"
            assert out == f"got {msg_id} for bob@example.com\n", (out, err)
            # reset: the messages are gone and the profile is the start one again.
            assert admin.ok("messages.list")["messages"] == []
            assert admin.ok("profile.get")["name"] == ""
            assert admin.ok("stats")["faults"]["fired"] == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_doc_covers_every_command_and_error_code():
    doc = DOC.read_text()
    header = (REPO_ROOT / "server" / "admin_cmd.h").read_text()
    commands = re.findall(r'^\s*X\("([a-z.]+)"', header, re.M)
    assert len(commands) >= 17
    headings = re.findall(r"^### `([a-z.]+)`", doc, re.M)
    assert headings == commands, "docs/admin.md has one ### `command` section per command, in table order"
    source = (REPO_ROOT / "server" / "admin_cmd.c").read_text() + (REPO_ROOT / "server" / "admin.c").read_text()
    codes = set(re.findall(r'admin_error\("([a-z_]+)"', source))
    assert codes >= {"bad_request", "invalid_json", "line_too_long", "unknown_command", "bad_argument",
                     "invalid_profile", "not_found", "timeout", "unauthorized", "unavailable", "internal"}
    table = set(re.findall(r"^\| `([a-z_]+)` \|", doc, re.M))
    assert codes <= table, f"error codes missing from the table in docs/admin.md: {sorted(codes - table)}"
    for snippet in ("node.js", "python.py", "php.php"):
        assert (SNIPPETS / snippet).read_text().strip() in doc, f"docs/admin.md does not show {snippet} as it is"
