"""Server-wide bounds against hostile or careless clients, and the files the server writes.

| item | test |
|---|---|
| SASL responses up to the AUTH line limit | test_auth_response_up_to_the_line_limit_is_decoded |
"""

import base64

import pytest


@pytest.mark.parametrize("encoded_len", [11000, 12284])
def test_auth_response_up_to_the_line_limit_is_decoded(server, encoded_len):
    # RFC 4954 section 4: a response line may be 12288 octets with its CRLF, so 12284 base64 characters
    # at most; each such response decodes (8 KiB of decode buffer refused those over 10924 characters).
    raw = b"\0tim\0" + b"p" * (encoded_len // 4 * 3 - 5)
    response = base64.b64encode(raw).decode()
    assert len(response) == encoded_len
    with server.connect() as c:
        c.greet()
        c.cmd("AUTH PLAIN", 334)
        c.cmd(response, 235)
        c.cmd("QUIT", 221)
