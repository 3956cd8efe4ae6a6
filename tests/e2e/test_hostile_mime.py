"""Red team on the MIME reading behind Mailpit's API (docs/http.md), BDAT's 8-bit scan, the event streams'
hand-written JSON lines: what an unauthenticated SMTP peer sends is shown as valid output, and costs no more
than docs/limits.md says."""

import datetime

from harness.http import http_json
from test_http import send


def message(srv, msg_id):
    status, m = http_json(srv, "GET", f"/api/v1/message/{msg_id}")
    assert status == 200, m
    return m


def test_date_is_always_rfc3339(server):
    """A Date field strptime reads but RFC 3339 cannot say (second 61, an offset of 24 hours or more) is no
    date: Date is then the time the message was received, never a time a client cannot parse."""
    for field in ("Thu, 1 Jan 2026 10:00:61 +0000", "1 Jan 2026 10:00:00 +9959", "1 Jan 2026 10:00:00 -2400"):
        msg_id = send(server, raw=f"From: a@example.org\r\nDate: {field}\r\nSubject: d\r\n\r\nHi.\r\n".encode())
        m = message(server, msg_id)
        _, summary = http_json(server, "GET", f"/api/v1/messages/{msg_id}")
        assert m["Date"] == summary["message"]["received"], (field, m["Date"])
        datetime.datetime.fromisoformat(m["Date"].replace("Z", "+00:00"))
