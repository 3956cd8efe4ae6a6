"""The four real clients pointed at one of the server's listeners with TLS verification ON, for test_tls.py and
test_auth.py.

Every client verifies the server certificate against the suite CA (harness.pki.ca_file()) and the host name
"localhost", the name the suite's server.pem is issued to; no client is ever put in an insecure mode. Each
helper starts TLS the way its listener wants it: implicit TLS on "smtps", STARTTLS on "smtp" and "submission".
"""

import json
import re
import socket
import ssl

from harness import clients
from harness.clients import swaks_errors, swaks_replies  # noqa: F401 (re-exported for the tests)
from harness.env import IO_TIMEOUT
from harness.pki import ca_file, pki_file  # noqa: F401 (re-exported for the tests)
from harness.server import address
from harness.smtp import RawClient

TLS_HOST = "localhost"  # in server.pem's subjectAltName (with 127.0.0.1 and ::1); wrong-host.pem lacks it
USER, PASSWORD = "alice@example.test", "correct horse battery"
USER_ARG = f"{USER}:{PASSWORD}"
HELO = "tls-client.example"
IMPLICIT = "smtps"
LISTENERS = ("smtp", "submission", "smtps")

# What the server answers, word for word (server/session.c)
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
READY_TO_START_TLS = "220 2.0.0 Ready to start TLS"
XOAUTH2_ERROR = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}


def message(subject="TLS e2e", sender="sender@example.org", to="rcpt@example.org"):
    """A small message for Nodemailer (PHPMailer's shape is built from it in phpmailer())."""
    return {"from": sender, "to": to, "subject": subject, "text": f"{subject}\n"}


def verifying_context():
    """Python's default client context: CERT_REQUIRED, check_hostname, TLS 1.2 and up, the suite CA only."""
    ctx = clients.tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def openssl_cipher(wolfssl_name):
    """The OpenSSL (and IANA) name of a TLS 1.3 suite as wolfSSL names it: TLS13-AES128-GCM-SHA256 ->
    TLS_AES_128_GCM_SHA256. Other names are returned as they are."""
    m = re.fullmatch(r"TLS13-AES(\d+)-GCM-(SHA\d+)", wolfssl_name)
    if m:
        return f"TLS_AES_{m.group(1)}_GCM_{m.group(2)}"
    m = re.fullmatch(r"TLS13-CHACHA20-POLY1305-(SHA\d+)", wolfssl_name)
    return f"TLS_CHACHA20_POLY1305_{m.group(1)}" if m else wolfssl_name


def check_capture(server, listener, user, count=1):
    """The last of count captured messages came in on listener, over TLS 1.3, logged in as user (None: no AUTH).
    Returns it."""
    messages = server.wait_for_messages(count)
    m = messages[-1]
    assert m["listener"] == listener, m.envelope
    assert m["tls"] is not None, f"captured without TLS: {m.envelope}"
    assert m["tls"]["version"] == "TLSv1.3", m.envelope
    assert m["tls"]["cipher"].startswith("TLS13-"), m.envelope
    assert m["auth"] == user, m.envelope
    return m


def session_of(server, local_address, timeout=10.0):
    """The transcript id of the session that came from local_address ("127.0.0.1:PORT")."""
    (sid,) = server.wait_for_log(rf"#(\d+) connect {re.escape(local_address)} on ", timeout=timeout)
    return int(sid)


# -- Python: smtplib and raw sockets --------------------------------------------------------------------------


def tls_mode(name):
    """How a client starts TLS on listener name: "implicit" on smtps, "starttls" elsewhere."""
    return "implicit" if name == IMPLICIT else "starttls"


def smtplib_tls(server, name, context=None, timeout=IO_TIMEOUT, helo=HELO):
    """An smtplib client on listener name with TLS up and EHLO sent over it: SMTP_SSL on smtps, else
    EHLO + starttls(context=...)."""
    ctx = context or verifying_context()
    client = clients.smtplib_client(server, name, tls="implicit" if name == IMPLICIT else None, host=TLS_HOST,
                                    context=ctx, timeout=timeout, local_hostname=helo)
    if name != IMPLICIT:
        try:
            client.ehlo()
            assert client.has_extn("starttls"), client.esmtp_features
            code, resp = client.starttls(context=ctx)
            assert (code, resp) == (220, b"2.0.0 Ready to start TLS")
        except BaseException:
            client.close()
            raise
    client.ehlo()
    return client


def raw(server, name="smtp", timeout=IO_TIMEOUT):
    """A RawClient (harness.smtp) connected to listener name; on smtps the TLS handshake is done first."""
    client = RawClient(*address(server, name), timeout=timeout)
    if name == IMPLICIT:
        try:
            start_tls(client)
        except BaseException:
            client.close()
            raise
    return client


def start_tls(client, context=None):
    """Wrap a RawClient's socket in TLS (verifying), once it has read everything sent before the handshake."""
    assert client.buf == b"", f"plaintext left unread before the handshake: {client.buf!r}"
    client.sock = (context or verifying_context()).wrap_socket(client.sock, server_hostname=TLS_HOST)
    return client


def raw_starttls(client, helo=HELO):
    """On a greeted plaintext RawClient: STARTTLS, the handshake, EHLO again. Returns the new EHLO reply."""
    client.cmd("STARTTLS", 220, "2.0.0 Ready to start TLS")
    start_tls(client)
    return client.cmd(f"EHLO {helo}", 250)


def client_hello(server_hostname=TLS_HOST):
    """The bytes of a real TLS ClientHello (OpenSSL's, through a memory BIO)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = verifying_context().wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:16]
    return hello


def wait_closed(sock, timeout=IO_TIMEOUT):
    """Read until the peer closes (bounded); everything read."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        except socket.timeout:
            raise AssertionError(f"the server did not close the connection within {timeout}s; read {data!r}")
        if not chunk:
            break
        data += chunk
    return data


# -- Nodemailer -----------------------------------------------------------------------------------------------


def nodemailer(server, name, msg=None, **transport):
    """Send one message with Nodemailer to listener name: secure (implicit TLS) on smtps, requireTLS
    (STARTTLS or fail) elsewhere; the suite CA in tls.ca. transport overrides or adds createTransport options.
    Returns nodemailer-send.js' result."""
    return clients.nodemailer(server, msg or message("nodemailer over " + name), listener=name, tls=tls_mode(name),
                              host=TLS_HOST, **transport)


def nodemailer_lines(result, tnx):
    """Nodemailer's own transcript: the lines it sent ("client") or read ("server")."""
    return [e["text"] for e in result["log"] if e["tnx"] == tnx]


# -- PHPMailer ------------------------------------------------------------------------------------------------


def php_ssl_options(**extra):
    """SMTPOptions['ssl'] with verification on against the suite CA."""
    options = {"cafile": ca_file(), "verify_peer": True, "verify_peer_name": True, "allow_self_signed": False}
    options.update(extra)
    return options


def phpmailer(server, name, exceptions=True, subject=None, **options):
    """Send one message with PHPMailer to listener name: SMTPSecure "ssl" on smtps, "tls" (STARTTLS)
    elsewhere, verification on. options add to or override phpmailer-send.php's keys (auth, timeout, ...).
    Returns (the message's result, PHPMailer's debug lines)."""
    messages = [{"from": "php@example.org", "to": ["rcpt@example.org"], "subject": subject or f"phpmailer over {name}",
                 "body": "hello\n"}]
    result = clients.phpmailer(server, messages, listener=name, tls=tls_mode(name), host=TLS_HOST,
                               exceptions=exceptions, **{"ssl": php_ssl_options(), "timeout": 20, **options})
    (r,) = result["results"]
    return r, result["debug"]


def php_failed(r, exceptions):
    """The failure PHPMailer reported: its exception message, or (exceptions off) send()'s false and ErrorInfo."""
    if exceptions:
        assert r["exception"] is not None and r["returned"] is None, r
        assert r["exception"]["class"] == "PHPMailer\\PHPMailer\\Exception", r
        return r["exception"]["message"]
    assert r["returned"] is False and r["exception"] is None, r
    return r["errorInfo"]


# -- swaks ----------------------------------------------------------------------------------------------------


def swaks(server, name, *args, tls=True, timeout=None):
    """swaks to listener name: --tls-on-connect on smtps, --tls (STARTTLS) elsewhere, with --tls-verify and the
    suite CA in --tls-ca-path. Returns the CompletedProcess (swaks' transcript is on stdout)."""
    extra = {} if timeout is None else {"timeout": timeout}
    return clients.swaks(server, "--helo", HELO, "--from", "swaks@example.org", "--to", "rcpt@example.org", *args,
                         listener=name, tls=tls_mode(name) if tls else None, host=TLS_HOST, **extra)


def swaks_tls_cipher(stdout):
    """(version, cipher) from swaks' '=== TLS started with cipher TLSv1.3:TLS_AES_128_GCM_SHA256:128'."""
    m = re.search(r"^=== TLS started with cipher ([^:]+):([^:]+):\d+$", stdout, re.M)
    assert m, stdout
    return m.group(1), m.group(2)


def dump(obj):
    return json.dumps(obj, indent=1)[:4000]
