"""pytest_plugin - the fixtures `smtpfault` (one server per test session) and `smtpfault_scope` (a scope per
test). Registered through the pytest11 entry point; under pytest-xdist each worker has its own session."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from ._client import Scope, SmtpFault


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "smtpfault(profile=None, listeners=None): how the test's smtpfault_scope is created (the "
                   "profile: a shipped profile's name, a file or a dict)")


@pytest.fixture(scope="session")
def smtpfault() -> Iterator[SmtpFault]:
    """The server of this test session: the one at $SMTPFAULT_ADMIN (with $SMTPFAULT_ADMIN_TOKEN) when set,
    else one spawned from $SMTPFAULT_BIN or PATH and stopped at the end of the session."""
    admin = os.environ.get("SMTPFAULT_ADMIN")
    token = os.environ.get("SMTPFAULT_ADMIN_TOKEN")
    server = SmtpFault.connect(admin, token=token) if admin else SmtpFault.start(token=token)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtpfault_scope(smtpfault: SmtpFault, request: pytest.FixtureRequest) -> Iterator[Scope]:
    """A scope of its own for this test, closed after it: `@pytest.mark.smtpfault("profile-name")` (or
    profile=..., listeners=[...]) chooses how it starts; scope.load_profile() changes it later."""
    marker = request.node.get_closest_marker("smtpfault")
    options = dict(marker.kwargs) if marker else {}
    if marker and marker.args:
        options["profile"] = marker.args[0]
    scope = smtpfault.create_scope(**options)
    try:
        yield scope
    finally:
        scope.close()
