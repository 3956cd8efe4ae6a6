"""
The examples in examples/ (Node.js, PHP, Python) run against a started server, so that they cannot rot.

Each example's test is run as its README says, with SMTPFAULT_SMTP and SMTPFAULT_ADMIN pointing at a server
started here with its defaults; it must exit 0. The Node.js example uses tests/clients' Nodemailer and the
smtpfault package of clients/node when it has no node_modules of its own.
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import CLIENTS_DIR, PHPMAILER_AUTOLOAD, REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
EXAMPLE_TIMEOUT = 120


def run_example(srv, argv, cwd, extra_env=None):
    env = dict(os.environ, SMTPFAULT_SMTP=srv.listener("smtp")["address"],
               SMTPFAULT_ADMIN=srv.listener("admin")["address"], PYTHONDONTWRITEBYTECODE="1")
    env.update(extra_env or {})
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, errors="replace",
                          timeout=EXAMPLE_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(argv)} in {cwd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_node_example(server, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    env = {}
    modules = EXAMPLES / "node" / "node_modules"
    if not ((modules / "nodemailer").is_dir() and (modules / "smtpfault").is_dir()):
        if not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
            pytest.skip("nodemailer is not installed (npm ci in examples/node or tests/clients)")
        # The smtpfault package from the tree, as examples/node's npm ci links it.
        (tmp_path / "smtpfault").symlink_to(REPO_ROOT / "clients" / "node")
        env["NODE_PATH"] = f"{tmp_path}:{CLIENTS_DIR / 'node_modules'}"
    proc = run_example(server, [node, "--test"], EXAMPLES / "node", env)
    assert "# fail 0" in proc.stdout, proc.stdout


def test_php_example(server):
    phpunit = shutil.which("phpunit")
    if phpunit is None or not PHPMAILER_AUTOLOAD.exists():
        pytest.skip("Debian's phpunit or libphp-phpmailer is not installed")
    proc = run_example(server, [phpunit], EXAMPLES / "php")  # the smtpfault package from clients/php
    assert "OK (4 tests" in proc.stdout, proc.stdout


def test_python_example(server):
    """With the smtpfault package from clients/python, as the example's README says (its tests are scopes of the
    server started here)."""
    proc = run_example(server, [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p",
                                "smtpfault.pytest_plugin"], EXAMPLES / "python",
                       {"PYTHONPATH": str(REPO_ROOT / "clients" / "python" / "src")})
    assert "5 passed" in proc.stdout, proc.stdout
