"""conftest.py - one scope per test, on the test's own admin connection (docs/scopes.md).

The server is started once for the whole run (make run, or a compose service); SMTPFAULT_ADMIN says where
its admin socket is (default 127.0.0.1:2580). Run the tests in parallel: python3 -m pytest -n 8.
"""
import json
import os
import socket

import pytest


class Admin:
    """One admin connection: newline-delimited JSON, a request and its response at a time."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
        self.reader = self.sock.makefile("rb")

    def __call__(self, cmd, **args):
        self.sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        response = json.loads(self.reader.readline())
        if not response["ok"]:
            raise AssertionError(f"{cmd}: {response['error']['code']}: {response['error']['message']}")
        return response

    def close(self):
        self.reader.close()
        self.sock.close()


class Scope:
    """A scope of the running server: its ports, and the admin commands applied to it."""

    def __init__(self, admin, answer):
        self.admin, self.id = admin, answer["scope"]
        self.listeners = answer["listeners"]

    def port(self, listener="smtp"):
        return self.listeners[listener]["port"]

    def __call__(self, cmd, **args):
        return self.admin(cmd, scope=self.id, **args)


@pytest.fixture
def scope():
    """A fresh scope with no fault; it ends when the test's admin connection closes, however the test ends."""
    admin = Admin(os.environ.get("SMTPFAULT_ADMIN", "127.0.0.1:2580"))
    try:
        yield Scope(admin, admin("scope.create", listeners=["smtp"]))
    finally:
        admin.close()
