"""The package's tests, against the real binary ($SMTPFAULT_BIN, else build/smtpfault of this repository),
with the package from this source tree and its pytest plugin."""

import os
import pathlib
import smtplib
import ssl
import sys

PACKAGE = pathlib.Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE.parents[1]
sys.path.insert(0, str(PACKAGE / "src"))
if "SMTPFAULT_BIN" not in os.environ and (REPO_ROOT / "build" / "smtpfault").exists():
    os.environ["SMTPFAULT_BIN"] = str(REPO_ROOT / "build" / "smtpfault")
os.environ.pop("SMTPFAULT_ADMIN", None)  # the `smtpfault` fixture starts a server of its own

pytest_plugins = ["smtpfault.pytest_plugin"]

IO_TIMEOUT = 30  # seconds for one SMTP exchange with a server under ASan on a loaded machine


def send_mail(listener, ca, to, subject="Welcome", sender="app@example.com"):
    """One message through `listener` with smtplib over STARTTLS, the server verified against `ca`."""
    with smtplib.SMTP(listener.host, listener.port, timeout=IO_TIMEOUT) as smtp:
        smtp.starttls(context=ssl.create_default_context(cadata=ca))
        smtp.sendmail(sender, [to], f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello!\r\n")
