"""The web page at / of the admin port, in a real browser: Debian's Chromium, headless, driven by puppeteer-core
(tests/clients/webui-drive.js), with Nodemailer sending meanwhile. Load a catalog profile by clicking, see the
failing session live with its fault highlighted, open a message (its HTML part sandboxed), validate a broken
profile in the editor, reset; then the same with --admin-token and inside a scope. Screenshots go to
$SMTPFAULT_SCREENSHOTS (default: the test's tmp directory). Skips, saying why, without Chromium or puppeteer-core."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CLIENTS_DIR
from harness.env import CLIENT_TIMEOUT
from harness.http import base_url, http, http_json

CHROMIUM = shutil.which("chromium")
NODE = shutil.which("node")
DRIVER = CLIENTS_DIR / "webui-drive.js"
PROFILE = "rcpt-550-mailbox-unavailable"
TOKEN = "webui-token"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/install-deps --test installs it)"),
    pytest.mark.skipif(NODE is None or not (CLIENTS_DIR / "node_modules" / "puppeteer-core").is_dir(),
                       reason="puppeteer-core is not installed in tests/clients/node_modules (npm ci)"),
]


def drive(srv, tmp_path, steps, name, **extra):
    shots = Path(os.environ.get("SMTPFAULT_SCREENSHOTS") or tmp_path / "screenshots") / name
    payload = {"url": base_url(srv) + extra.pop("path", "/"), "smtpPort": extra.pop("smtp_port", srv.port),
               "chromium": CHROMIUM, "screenshots": str(shots), "profile": PROFILE, "steps": steps, **extra}
    proc = subprocess.run([NODE, str(DRIVER), json.dumps(payload)], capture_output=True, text=True,
                          timeout=CLIENT_TIMEOUT * 2, cwd=CLIENTS_DIR)
    assert proc.stdout.strip(), f"the driver printed nothing; stderr:\n{proc.stderr[-3000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], f"step {out.get('step')}: {out.get('error')} (screenshots in {shots})"
    assert out["consoleErrors"] == [], out["consoleErrors"]
    return out


def test_page_catalog_fault_message_reset(server, tmp_path):
    out = drive(server, tmp_path, ["catalog", "fault", "message", "validate", "reset"], "full")
    catalog = http_json(server, "GET", "/api/v1/profiles")[1]["profiles"]
    assert out["catalog"] == len(catalog)
    assert out["description"] == next(p["description"] for p in catalog if p["name"] == PROFILE)
    # the click loaded the profile into the server, and the page shows it as JSON
    assert out["profileShown"].startswith(PROFILE) and out["editor"]["rules"]
    # Nodemailer was refused, and the page showed that session live with the fault highlighted
    assert out["send"]["ok"] is False and out["send"]["responseCode"] == 550
    assert "550" in out["fault"]["text"] and out["fault"]["text"].startswith(out["fault"]["text"][:12])
    assert "closed" in out["fault"]["facts"] and any("fault" in line for line in out["fault"]["lines"])
    assert out["faultsFired"] == "1" and out["byRule"] and out["byRule"][0].endswith("1")
    # the message: text part, headers, raw source, a download, the HTML part in a sandbox that ran no script
    assert out["sendOk"]["ok"] is True
    m = out["message"]
    assert "424242" in m["text"] and "Subject: Welcome Bob" in m["headers"] and "Subject: Welcome Bob" in m["raw"]
    assert m["download"][0].endswith(".eml") and m["download"][1] == "blob:"
    assert "<b>424242</b>" in m["html"] and m["sandbox"] == "" and m["title"] != "pwned"
    # the editor's errors, each at its JSON path
    assert [p for p, _ in out["errors"]] == ["rules[0].when.stage"]
    # reset: no messages, no faults
    assert http_json(server, "GET", "/api/v1/messages")[1]["messages"] == []


def test_page_with_a_token(server_factory, tmp_path):
    srv = server_factory("--admin-token", TOKEN)
    status, _, body = http(srv, "GET", "/")  # the page itself needs no token; its API calls do
    assert status == 200 and b"<title>smtpfault</title>" in body
    out = drive(srv, tmp_path, ["catalog", "fault"], "token", token=TOKEN)
    assert out["dialogs"] == 1  # asked once, then kept in sessionStorage
    assert out["fault"]["text"]
    assert http_json(srv, "GET", "/api/v1/profile", token=TOKEN)[1]["name"] == PROFILE


def test_page_in_a_scope(server, tmp_path):
    status, sc = http_json(server, "POST", "/api/v1/scope.create", {"profile": {"rules": []}})
    assert status == 200
    out = drive(server, tmp_path, ["catalog", "fault", "message"], "scope", path=f"/?scope={sc['scope']}",
                smtp_port=sc["listeners"]["smtp"]["port"])
    assert out["fault"]["text"] and "424242" in out["message"]["text"]
    # the click loaded the profile into the scope, not the server's own
    assert http_json(server, "GET", f"/api/v1/profile?scope={sc['scope']}")[1]["name"] == ""  # cleared at the end
    assert http_json(server, "GET", "/api/v1/profile")[1]["name"] == ""
    assert http_json(server, "GET", "/api/v1/messages")[1]["messages"] == []
    assert len(http_json(server, "GET", f"/api/v1/messages?scope={sc['scope']}")[1]["messages"]) == 1


def test_static_files_and_headers(server):
    for path, ctype in (("/", "text/html"), ("/index.html", "text/html"), ("/app.js", "text/javascript"),
                        ("/app.css", "text/css")):
        status, hdrs, body = http(server, "GET", path)
        assert status == 200 and hdrs["Content-Type"].startswith(ctype) and body
        assert "default-src 'none'" in hdrs["Content-Security-Policy"]
    assert http(server, "GET", "/app.jsx")[0] == 404
    assert http(server, "POST", "/", b"")[0] == 404
