"""The suite's test PKI: written once per pytest process by `smtpfault certs DIR`, presented by every server."""

import tempfile
from pathlib import Path

from harness.env import run_binary

_PKI_DIR = None


def suite_pki():
    """A test PKI written once per pytest process by `smtpfault certs DIR`; every server presents it.

    Clients verify against ca.pem; the broken certificates (expired.pem, wrong-host.pem, ...) are there
    for the TLS fault tests.
    """
    global _PKI_DIR
    if _PKI_DIR is None:
        path = Path(tempfile.mkdtemp(prefix="smtpfault-pki-"))
        proc = run_binary(["certs", str(path)])
        assert proc.returncode == 0, f"smtpfault certs failed: {proc.stdout}{proc.stderr}"
        _PKI_DIR = path
    return _PKI_DIR


def ca_file():
    return str(suite_pki() / "ca.pem")


def ca_pem():
    """The suite CA as PEM text (for clients that take the certificate itself, such as Nodemailer)."""
    return Path(ca_file()).read_text()


def pki_file(name):
    """The path of one file of the suite PKI (expired.pem, wrong-host.pem, ...)."""
    return str(suite_pki() / name)
