"""
Every fenced code block of README.md and docs/*.md, run or checked as written.

Every block carries an info string, which says what it is and what this test does with it:

  sh        shell commands, one per line: run with bash against a server started here; each must exit 0.
  console   a shell session: each `$ COMMAND` line is run with bash, and the lines after it are its output
            (stdout and stderr together). The output must match: runs of blanks and line breaks compare
            equal, and a line `...` stands for any number of lines.
  python, js, php
            programs, or fragments that configure a client: run, fragments inside a short prelude that sends
            one message through every client they configure, and the message must arrive.
  json      a fault profile: `smtpfault check` accepts it, or it is the broken one that the console block
            after it checks (then the errors must be the documented ones).
  json composer
            a project's composer.json: composer installs from it (test_clients_md_without_frameworks).
  admin     an admin socket transcript: `> request` lines are sent and each `< response` compared with the
            server's structurally (every key, in order); `…` stands for elided list items or lines.
  json output
            JSON the server writes: docs/server.md's ports file, envelope and log line must have the shape of
            the real ones (test_json_outputs), docs/tls.md's envelope fragment its values (test_tls_clients).
  text      what a program prints (logs, transcripts, diagrams): not run; some are compared with what the
            server logs (the README's transcript, docs/tls.md's start lines, the start errors of
            docs/admin.md and docs/server.md). The client outputs in
            docs/errors.md are rendered from test_catalog.py's run of every client.
  yaml      compose fragments: parsed (they run only in a container, see NOT_RUN).

A `smtpfault ...`, `build/smtpfault ...` or `make run ARGS="..."` line that starts a server is mapped to
starting the binary under test with those arguments. The one normalisation allowed on what runs: the
default ports 2525, 2587, 2465 and 2580 become the test server's ephemeral ones, the paths
/tmp/smtpfault-certs and /tmp/pki become directories of this test, /path/to/smtpfault (the checkout a
package installs from) a copy of its clients/, `build/smtpfault` and `smtpfault` are the
binary under test, and SMTPFAULT_ADMIN points `smtpfault ctl` at the test server's admin socket (what its
default 127.0.0.1:2580 would reach). Tests must not bind fixed ports: a developer may run `make run` meanwhile.

A block that cannot run here is in NOT_RUN, with the reason and what covers it instead; the snippets of
docs/admin.md are examples/admin-snippets/, run by test_admin_snippets.py. Every other runnable block is
claimed by one of the tests below (CLAIMED): a new block that nobody claims fails test_every_block_is_covered.
"""

import base64
import json
import os
import re
import shlex
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

import pytest

from conftest import (CLIENTS_DIR, IO_TIMEOUT, PHPMAILER_AUTOLOAD, REPO_ROOT, SLOW, SWAKS, VALGRIND, VALGRIND_ARGV,
                      Server, poll, run_binary, server_env, smtpfault_bin, suite_pki)

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LANGS = {"sh", "console", "python", "js", "php", "json", "admin", "text", "yaml"}
COMMAND_TIMEOUT = 60.0 * SLOW

# (file, start of the block) -> why it does not run here, and what covers it instead.
NOT_RUN = {
    ("docs/docker.md", "docker compose up -d"): "needs a container engine: tests/container/run.sh (container.compose)",
    ("docs/docker.md", "docker build -t smtpfault ."): "needs a container engine: tests/container/run.sh",
    ("docs/docker.md", "cd examples/compose"): "needs a container engine: tests/container/run.sh runs examples/compose",
    ("docs/docker.md", "cd build && ctest -L container"): "the container test itself (container.compose)",
    ("docs/docker.md", "    volumes:"): "a compose fragment: parsed here; the compose files run in "
                                         "tests/container/run.sh",
    ("docs/docker.md", "services:\n  app:\n    volumes:"): "a compose fragment: parsed here; the compose files run "
                                                           "in tests/container/run.sh",
    ("docs/docker.md", "services:\n  app:\n    depends_on:"): "a compose fragment: parsed here; examples/compose "
                                                              "(the same service) runs in tests/container/run.sh",
    ("docs/performance.md", "make bench "): "benchmarks: minutes of load on an idle machine (make bench)",
    ("docs/performance.md", "bench/delay_accuracy.py"): "a benchmark; test_conn_faults.py::test_delay_accuracy "
                                                        "measures the same",
    ("docs/performance.md", "make bench-tls"): "benchmarks: minutes of load on an idle machine",
    ("docs/performance.md", "/usr/bin/python3 bench/hostile.py"): "a benchmark of a few minutes; "
                                                                 "tests/e2e/test_hostile_*.py hold its bounds",
    ("docs/admin.md", "// Load a profile, wait"): "examples/admin-snippets/node.js: test_admin_snippets.py",
    ("docs/admin.md", '"""Load a profile, wait'): "examples/admin-snippets/python.py: test_admin_snippets.py",
    ("docs/admin.md", "<?php"): "examples/admin-snippets/php.php: test_admin_snippets.py",
    ("README.md", "composer require --dev phpunit/phpunit phpmailer/phpmailer"): "needs packagist.org, which this "
        "machine cannot reach: test_readme_test_suite_php gives the project Debian's phpunit and PHPMailer",
    ("docs/clients.md", "python3 -m venv --system-site-packages .venv    #"): "installs into a venv: "
        "test_readme_quick_start_and_test_suite runs the README's same commands, "
        "clients/python/tests/test_package.py installs the wheel into a venv",
    ("docs/client-checks.md", "scope.assert_client("): "a line of a test: clients/python/tests/test_report.py "
        "(clients.python) runs this block on its scope after the story it describes",
    ("docs/clients.md", "import smtplib, ssl, pytest"): "clients/python/tests/test_package.py runs it in an empty "
                                                        "project with the installed wheel",
    ("docs/clients.md", "<?php\nuse PHPMailer"): "clients/php/tests/PackageTest.php runs it in an empty project "
                                                   "with the composer archive installed",
    ("docs/clients.md", "npm install --save-dev /path/to/smtpfault/clients/node"): "installs the Node package: "
        "clients/node/test/pack.test.js (clients.node) installs its npm pack archive into an empty project",
    ("docs/clients.md", "const { test, before, after } = require('node:test');"): "the Node quick start: "
        "clients/node/test/pack.test.js (clients.node) runs it with node --test where the packed package is installed",
    ("docs/clients.md", "import smtplib, time\nimport pytest"): "the Python retry example (assert_client): "
        "clients/python/tests/test_package.py (clients.python) runs it in an empty project with the installed wheel",
    ("docs/clients.md", "const assert = require('node:assert/strict');\nconst { test, before, after }"): "the Node "
        "retry example (assertClient): clients/node/test/pack.test.js (clients.node) runs it with node --test where "
        "the packed package is installed",
    ("docs/clients.md", "<?php\nuse PHPUnit"): "the PHP retry example (assertClient): clients/php/tests/PackageTest.php "
        "(clients.php) runs it in an empty project with the composer archive installed",
    ("docs/clients.md", "const { SmtpfaultContainer }"): "needs a container engine: "
        "clients/node/test/containers/ (container.testcontainers) starts the image the same way",
}
# Lines of claimed sh blocks that are not run (the block's other lines are).
NOT_RUN_LINES = {"make test": "the whole suite, this test included: what CI runs"}

# The blocks each test below runs: (file, start of the block).
CLAIMED = {
    "test_readme_quick_start_and_test_suite": [
        ("README.md", "make run     #"), ("README.md", "$ swaks --server 127.0.0.1:2525 --to rcpt452"),
        ("README.md", "python3 -m venv --system-site-packages"), ("README.md", "import smtplib, time, pytest")],
    "test_readme_test_suite_node": [
        ("README.md", "npm install --save-dev /path/to/smtpfault/clients/node"),
        ("README.md", "const { test, before, after } = require('node:test');")],
    "test_readme_test_suite_php": [
        ("README.md", "composer config repositories.smtpfault"), ("README.md", "<?php\nuse PHPMailer")],
    "test_readme_30_second_example": [
        ("README.md", 'make run ARGS="--profile'), ("README.md", "$ python3 -c 'import smtplib"),
        ("README.md", "$ build/smtpfault ctl load")],
    "test_readme_clients_with_verification": [
        ("README.md", 'make run ARGS="--certs-dir'), ("README.md", "const fs = require('fs');"),
        ("README.md", "$mail->isSMTP();")],
    "test_admin_first_example": [("docs/admin.md", "$ exec 3<>/dev/tcp")],
    "test_admin_ctl_session": [("docs/admin.md", "$ smtpfault ctl load flaky-rcpt.json")],
    "test_errors_md_commands": [("docs/errors.md", "smtpfault --profile"), ("docs/errors.md", "smtpfault ctl load")],
    "test_profile_check_errors": [("docs/profiles.md", "$ smtpfault check broken.json")],
    "test_scopes_md": [("docs/scopes.md", "smtpfault ctl scope create"),
                       ("docs/scopes.md", "cd examples/parallel/python")],
    "test_clients_md_without_frameworks": [
        ("docs/clients.md", "import smtplib, ssl\nfrom smtpfault import SmtpFault"),
        ("docs/clients.md", '{\n    "require": { "smtpfault/smtpfault"'), ("docs/clients.md", "<?php\nrequire 'vendor")],
    "test_tls_clients": [("docs/tls.md", "const fs = require('node:fs');"),
                         ("docs/tls.md", "$mail = new PHPMailer"), ("docs/tls.md", "import smtplib, ssl"),
                         ("docs/tls.md", "swaks --server localhost")],
}


# -- the blocks ---------------------------------------------------------------------------------------------


@dataclass
class Block:
    file: str  # relative to the repository root
    line: int  # of the opening fence
    lang: str
    meta: str
    text: str

    @property
    def first(self):
        return self.text.split("\n", 1)[0]

    def __str__(self):
        return f"{self.file}:{self.line} ({self.lang or 'no info string'})"


def parse_blocks(path):
    """The fenced blocks of a markdown file, their content unindented by the fence's indentation."""
    blocks, lines = [], path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^( *)(`{3,}|~{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^ *{fence[0]}{{{len(fence)},}}\s*$", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        lang, _, meta = info.partition(" ")
        blocks.append(Block(str(path.relative_to(REPO_ROOT)), i + 1, lang, meta.strip(), "\n".join(body)))
        i = j + 1
    return blocks


ALL_BLOCKS = [b for doc in DOCS for b in parse_blocks(doc)]
# docs/http.md's curl sessions run in order against one server: each claimed by the test that runs them all.
HTTP_CONSOLE = [b for b in ALL_BLOCKS if b.file == "docs/http.md" and b.lang == "console"]
CLAIMED["test_http_curl_examples"] = [(b.file, b.first) for b in HTTP_CONSOLE]


def find_blocks(key):
    file, start = key
    return [b for b in ALL_BLOCKS if b.file == file and b.text.startswith(start)]


def block(file, start):
    found = find_blocks((file, start))
    assert len(found) == 1, f"{len(found)} blocks of {file} start with {start!r} (expected one)"
    return found[0]


def claimed_block(test, file, start):
    assert (file, start) in CLAIMED[test], f"{test} runs {file} {start!r}: list it in CLAIMED"
    return block(file, start)


def test_every_block_is_covered():
    """Every block has a known info string; every runnable one is run by a test here or listed in NOT_RUN."""
    problems = []
    claimed = [key for keys in CLAIMED.values() for key in keys]
    for key in [*claimed, *NOT_RUN]:
        if len(find_blocks(key)) != 1:
            problems.append(f"{key}: matches {len(find_blocks(key))} blocks, not one")
    for b in ALL_BLOCKS:
        if b.lang not in LANGS:
            problems.append(f"{b}: info string {b.lang!r} is not one of {sorted(LANGS)}")
            continue
        shown = b.lang == "text" or (b.lang == "json" and b.meta == "output")
        checked = (b.lang == "json" and not b.meta) or b.lang == "admin"  # test_json_profiles, test_admin_transcripts
        if shown or checked:
            continue
        if b.meta and (b.lang, b.meta) != ("json", "composer"):
            problems.append(f"{b}: unknown info string {b.lang} {b.meta!r}")
        elif not any(b in find_blocks(key) for key in [*claimed, *NOT_RUN]):
            problems.append(f"{b}: starts {b.first!r}: no test runs it (claim it in CLAIMED, or explain in NOT_RUN)")
    assert not problems, "\n".join(problems)


def test_yaml_fragments_parse():
    yaml = pytest.importorskip("yaml")
    fragments = [b for b in ALL_BLOCKS if b.lang == "yaml"]
    assert fragments
    for b in fragments:
        assert isinstance(yaml.safe_load(b.text), dict), f"{b} is not a YAML mapping"


# -- normalisation and running commands ---------------------------------------------------------------------


DEFAULT_PORTS = {"smtp": 2525, "submission": 2587, "smtps": 2465, "admin": 2580}


def substitute(text, srv, paths=None):
    """The one normalisation: default ports -> the server's, documented paths -> this test's."""
    for name, port in DEFAULT_PORTS.items():
        if srv is not None and name in srv.ports:
            text = re.sub(rf"(?<![\d.]){port}(?!\d)", str(srv.ports[name]["port"]), text)
    for doc_path, real in (paths or {}).items():
        text = text.replace(doc_path, str(real))
    return re.sub(r"(?<![\w/.-])build/smtpfault\b", str(smtpfault_bin()), text)


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory):
    """A directory with `smtpfault` -> the binary under test, first on the commands' PATH."""
    path = tmp_path_factory.mktemp("bin")
    (path / "smtpfault").symlink_to(smtpfault_bin())
    return path


def shell_env(bin_dir, srv, extra=None):
    env = {k: v for k, v in server_env().items() if not k.startswith("SMTPFAULT_")}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
    env["NODE_PATH"] = str(CLIENTS_DIR / "node_modules")
    if srv is not None:
        env["SMTPFAULT_ADMIN"] = srv.ports["admin"]["address"]
    env.update(extra or {})
    return env


def run_shell(command, env, cwd, timeout=COMMAND_TIMEOUT):
    """One command line with bash: (exit status, stdout and stderr together)."""
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout, text=True,
                          errors="replace")
    return proc.returncode, proc.stdout


TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
MSGID_RE = r"[0-9A-F]{20}"


def output_regex(expected):
    """A regex for documented output: runs of blanks and line breaks match any such run, a `...` line any
    lines, and times and message ids any time and id."""
    rx, previous_text = r"\s*", False
    for line in expected.strip("\n").split("\n"):
        if line.strip() == "...":
            rx, previous_text = rx + r"[\s\S]*?", False
            continue
        pieces = re.split(rf"({TIME_RE}|{MSGID_RE}|\s+)", line.strip())
        rx += (r"\s+" if previous_text else r"\s*") + "".join(
            r"\s+" if p.isspace() else TIME_RE if re.fullmatch(TIME_RE, p) else MSGID_RE if re.fullmatch(MSGID_RE, p)
            else re.escape(p) for p in pieces if p)
        previous_text = True
    return re.compile(rx + r"\s*")


def check_output(command, expected, actual):
    text = actual.rstrip("\n") + "\n" if actual.strip() else ""
    rx = output_regex(expected) if expected.strip() else re.compile(r"\s*")
    assert rx.fullmatch(text), f"`{command}` printed:\n{actual}\nthe document says:\n{expected}"


def console_commands(b):
    """[(command, documented output)] of a console block."""
    out = []
    for line in b.text.split("\n"):
        if line.startswith("$ "):
            out.append([line[2:], []])
        else:
            assert out, f"{b}: output before the first `$ ` command"
            out[-1][1].append(line)
    return [(cmd, "\n".join(lines)) for cmd, lines in out]


def run_console(b, srv, env, cwd, paths=None, before=None):
    """Run every command of a console block and compare its output; before[command prefix] runs first."""
    for command, expected in console_commands(b):
        for prefix, hook in (before or {}).items():
            if command.startswith(prefix):
                hook()
        _, out = run_shell(substitute(command, srv, paths), env, cwd)
        check_output(command, expected, out)


def sh_commands(b):
    return [line for line in b.text.split("\n") if line.strip() and not line.lstrip().startswith("#")]


def server_args(command):
    """The arguments of a command line that starts a server, else None."""
    command = command.split(" #", 1)[0].strip()
    words = shlex.split(command)
    if words[:2] == ["make", "run"]:
        args = [w[5:] for w in words[2:] if w.startswith("ARGS=")]
        return shlex.split(args[0]) if args else []
    if words and words[0] in ("smtpfault", "build/smtpfault", "./build/smtpfault") and \
            (len(words) == 1 or words[1].startswith("-")):
        return words[1:]
    return None


@pytest.fixture
def doc_server(tmp_path):
    """Start the binary under test with a documented command line's arguments, every listener on an
    ephemeral port; at teardown each must stop cleanly (exit 0, no sanitizer report)."""
    servers = []

    def start(args):
        workdir = tmp_path / f"server{len(servers)}"
        srv = Server(workdir)
        srv.argv = [*(VALGRIND_ARGV if VALGRIND else []), str(smtpfault_bin()), "--smtp", "127.0.0.1:0",
                    "--submission", "127.0.0.1:0", "--smtps", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                    "--ports-file", str(srv.ports_file), "--store-dir", str(srv.store_dir), *args]
        servers.append(srv)
        return srv.start()

    yield start
    failures = []
    for srv in servers:
        try:
            srv.stop()
            srv.check_clean_exit()
        except AssertionError as e:
            failures.append(str(e))
        finally:
            srv.kill()
    assert not failures, "\n\n".join(failures)


def run_sh(b, start, env_for, cwd, paths=None, srv=None):
    """Run an sh block: a line that starts a server starts it (the lines after run against it), the others
    run with bash and must exit 0 (srv: a server already running, the one the default ports name). Returns the
    server."""
    for command in sh_commands(b):
        if command.split(" #", 1)[0].strip() in NOT_RUN_LINES:
            continue
        args = server_args(command)
        if args is not None:
            assert srv is None, f"{b}: starts two servers"
            srv = start([substitute(a, None, paths) for a in args])
            continue
        status, out = run_shell(substitute(command, srv, paths), env_for(srv), cwd)
        assert status == 0, f"{b}: `{command}` exited {status}:\n{out}"
    return srv


def admin_call(srv, request):
    with srv.admin() as client:
        return client.request(request)


def stored(srv, count, timeout=IO_TIMEOUT):
    return srv.wait_for_messages(count, timeout)


# -- README.md ----------------------------------------------------------------------------------------------


def checkout_copy(tmp_path):
    """/path/to/smtpfault of the README: a copy of this checkout's clients/ (installing a package from a
    directory builds or links it there), without what the packages' own tests left behind."""
    copy = tmp_path / "smtpfault"
    shutil.copytree(REPO_ROOT / "clients", copy / "clients", symlinks=True,
                    ignore=shutil.ignore_patterns("node_modules", "vendor", "build", "*.egg-info", "__pycache__"))
    return {"/path/to/smtpfault": copy}


def debian_python_first(env, tmp_path):
    """env with Debian's python3 (what the docs' commands mean on Debian 12, with its pytest and
    pytest-xdist) first on PATH, before any other python3 the machine has."""
    python = tmp_path / "python-bin"
    python.mkdir(exist_ok=True)
    if not (python / "python3").exists():
        (python / "python3").symlink_to("/usr/bin/python3")
    return {**env, "PATH": f"{python}:{env['PATH']}"}


def readme_project(test, tmp_path, test_file, start, srv):
    """An empty project directory holding the README's test file (the block starting with `start`)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / test_file).write_text(substitute(claimed_block(test, "README.md", start).text, srv))
    return project


def test_readme_quick_start_and_test_suite(doc_server, bin_dir, tmp_path):
    """`make run` (its defaults), the magic address, and the Python test suite: the package installed into a
    venv as the README says, and test_welcome.py run by that venv's pytest (the plugin found through its
    entry point) against the server."""
    test = "test_readme_quick_start_and_test_suite"
    srv = run_sh(claimed_block(test, "README.md", "make run     #"), doc_server, lambda s: shell_env(bin_dir, s),
                 REPO_ROOT)
    env = shell_env(bin_dir, srv)
    run_console(claimed_block(test, "README.md", "$ swaks --server 127.0.0.1:2525 --to rcpt452"), srv, env, tmp_path)

    project = readme_project(test, tmp_path, "test_welcome.py", "import smtplib, time, pytest", srv)
    env = debian_python_first(shell_env(bin_dir, srv, {"PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_INDEX": "1"}),
                              tmp_path)  # PIP_NO_INDEX: no PyPI here, and the package needs none
    env.pop("SMTPFAULT_ADMIN")  # the block names it
    env.pop("PYTHONPATH", None)
    run_sh(claimed_block(test, "README.md", "python3 -m venv --system-site-packages"), None, lambda s: env, project,
           checkout_copy(tmp_path), srv)
    # The scope's profile failed its first two connections, then the mail went through, into the scope only.
    assert len(re.findall(r"fault rule 0 at greeting: reply 421 4\.7\.0 Try again later", srv.log())) == 2
    assert len(re.findall(r"reply 250 2\.0\.0 Ok: queued", srv.log())) == 1, srv.log()
    assert admin_call(srv, {"cmd": "scope.list"})["scopes"] == [], "the test's scope ended with it"
    assert admin_call(srv, {"cmd": "messages.list"})["messages"] == []
    assert admin_call(srv, {"cmd": "profile.get"})["name"] == ""


def test_readme_test_suite_node(doc_server, bin_dir, tmp_path):
    """The Node package installed into an empty project with npm as the README says (offline: a directory is
    linked), Nodemailer from tests/clients (NODE_PATH), and the test file run with node --test."""
    if shutil.which("npm") is None or not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
        pytest.skip("npm or tests/clients/node_modules/nodemailer is missing")
    test = "test_readme_test_suite_node"
    srv = doc_server([])
    project = readme_project(test, tmp_path, "welcome.test.js", "const { test, before, after } = require('node:test');",
                             srv)
    (project / "package.json").write_text('{"name": "welcome", "private": true}\n')
    env = shell_env(bin_dir, srv, {"npm_config_cache": str(tmp_path / "npm-cache"), "npm_config_audit": "false",
                                   "npm_config_fund": "false", "npm_config_update_notifier": "false"})
    env.pop("NODE_PATH", None)  # Nodemailer comes from the registry, as the README installs it
    run_sh(claimed_block(test, "README.md", "npm install --save-dev /path/to/smtpfault/clients/node"), None,
           lambda s: env, project, checkout_copy(tmp_path), srv)
    # npm links the directory, or (npm 9.0-9.3, Debian 12's: install-links) copies it
    installed = json.loads((project / "node_modules" / "smtpfault" / "package.json").read_text())
    assert installed["name"] == "smtpfault"
    assert (project / "node_modules" / "nodemailer").is_dir()
    assert len(re.findall(r"fault rule 0 at rcpt: reply 451 4\.3\.0 Try again later", srv.log())) == 1
    assert admin_call(srv, {"cmd": "scope.list"})["scopes"] == []


def composer_env(env, tmp_path):
    """env for composer and php in a project of this test: composer's home and cache here, and PHPMailer (which
    the project would have from packagist) Debian's, its autoloader prepended to every script."""
    if shutil.which("composer") is None or shutil.which("phpunit") is None or not PHPMAILER_AUTOLOAD.exists():
        pytest.skip("composer, Debian's phpunit or libphp-phpmailer is missing")
    ini = tmp_path / "php-ini"
    ini.mkdir()
    (ini / "phpmailer.ini").write_text(f"auto_prepend_file={PHPMAILER_AUTOLOAD}\n")
    return {**env, "COMPOSER_HOME": str(tmp_path / "composer-home"), "COMPOSER_NO_INTERACTION": "1",
            "COMPOSER_CACHE_DIR": str(tmp_path / "composer-cache"), "PHP_INI_SCAN_DIR": f":{ini}"}


def test_readme_test_suite_php(doc_server, bin_dir, tmp_path):
    """The PHP package required with composer from a path repository as the README says, in an empty project
    (packagist.org off: no network here); PHPUnit and PHPMailer, which the project would require from
    packagist, are Debian's: vendor/bin/phpunit links Debian's phpunit, and PHPMailer's autoloader is
    prepended (PHP_INI_SCAN_DIR)."""
    test = "test_readme_test_suite_php"
    srv = doc_server([])
    project = readme_project(test, tmp_path, "WelcomeTest.php", "<?php\nuse PHPMailer", srv)
    (project / "composer.json").write_text('{"repositories": {"packagist.org": false}}\n')
    (project / "vendor" / "bin").mkdir(parents=True)
    (project / "vendor" / "bin" / "phpunit").symlink_to(shutil.which("phpunit"))
    env = composer_env(shell_env(bin_dir, srv), tmp_path)
    run_sh(claimed_block(test, "README.md", "composer config repositories.smtpfault"), None, lambda s: env, project,
           checkout_copy(tmp_path), srv)
    assert (project / "vendor" / "smtpfault" / "smtpfault").resolve() == tmp_path / "smtpfault" / "clients" / "php"
    assert len(re.findall(r"fault rule 0 at rcpt: reply 550 5\.1\.1 User unknown", srv.log())) == 1
    assert admin_call(srv, {"cmd": "scope.list"})["scopes"] == []


def test_readme_30_second_example(doc_server, bin_dir, tmp_path):
    test = "test_readme_30_second_example"
    srv = run_sh(claimed_block(test, "README.md", 'make run ARGS="--profile'), doc_server,
                 lambda s: shell_env(bin_dir, s), REPO_ROOT)
    env = shell_env(bin_dir, srv)
    run_console(claimed_block(test, "README.md", "$ python3 -c 'import smtplib"), srv, env, REPO_ROOT)
    run_console(claimed_block(test, "README.md", "$ build/smtpfault ctl load"), srv, env, REPO_ROOT)
    # The transcript the README shows is the server's, times aside.
    log = srv.log()
    for line in block("README.md", "2026-12-03T").text.split("\n"):
        rx = re.escape(line).replace(re.escape(re.match(TIME_RE, line).group(0)), TIME_RE, 1)
        assert re.search(rf"^{rx}$", log, re.M), f"the server's log has no line like {line!r}:\n{log}"


NODE_PRELUDE = """\
const __nodemailer = require('nodemailer');
const __made = [];
const __create = __nodemailer.createTransport;
__nodemailer.createTransport = (...args) => { const t = __create.apply(__nodemailer, args); __made.push(t); return t; };
"""
NODE_POSTLUDE = """
;(async () => {
  for (const [i, t] of __made.entries()) {
    const info = await t.sendMail({ from: 'app@example.com', to: `node${i}@example.com`, subject: 'docs', text: 'hi' });
    console.log(info.response);
    t.close();
  }
})().catch(e => { console.error(e); process.exit(1); });
"""


def run_node_fragment(b, srv, env, cwd, paths):
    if shutil.which("node") is None or not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
        pytest.skip("node or tests/clients/node_modules/nodemailer is missing")
    script = cwd / "fragment.js"
    script.write_text(NODE_PRELUDE + substitute(b.text, srv, paths) + NODE_POSTLUDE)
    proc = subprocess.run(["node", str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{b}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout.split("\n")[:-1]


def run_php_fragment(b, srv, env, cwd, paths, text=None, prelude=""):
    if shutil.which("php") is None or not PHPMAILER_AUTOLOAD.exists():
        pytest.skip("php or Debian's libphp-phpmailer is missing")
    script = cwd / "fragment.php"
    script.write_text(f"<?php\nrequire '{PHPMAILER_AUTOLOAD}';\n{prelude}\n"
                      + substitute(text if text is not None else b.text, srv, paths)
                      + "\n$mail->Timeout = 20;\n$mail->getSMTPInstance()->Timelimit = 20;\n"
                      "$mail->setFrom('app@example.com');\n$mail->addAddress('php@example.com');\n"
                      "$mail->Subject = 'docs';\n$mail->Body = 'hi';\n$mail->send();\necho \"sent\\n\";\n")
    proc = subprocess.run(["php", str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stdout.endswith("sent\n"), f"{b}:\n{proc.stdout}{proc.stderr}"


def envelopes(srv, count):
    return [m.envelope for m in stored(srv, count)]


def test_readme_clients_with_verification(doc_server, bin_dir, tmp_path):
    """The server with a fresh --certs-dir and an account; Nodemailer on 2465 and 2587, PHPMailer on 2465,
    each verifying the certificate against the ca.pem the server wrote."""
    test = "test_readme_clients_with_verification"
    paths = {"/tmp/smtpfault-certs": tmp_path / "smtpfault-certs"}
    srv = run_sh(claimed_block(test, "README.md", 'make run ARGS="--certs-dir'), doc_server,
                 lambda s: shell_env(bin_dir, s), REPO_ROOT, paths)
    env = shell_env(bin_dir, srv)
    assert (tmp_path / "smtpfault-certs" / "ca.pem").exists()
    run_node_fragment(claimed_block(test, "README.md", "const fs = require('fs');"), srv, env, tmp_path, paths)
    run_php_fragment(claimed_block(test, "README.md", "$mail->isSMTP();"), srv, env, tmp_path, paths,
                     prelude="use PHPMailer\\PHPMailer\\PHPMailer;\n$mail = new PHPMailer(true);")
    got = sorted((e["recipients"][0], e["listener"], e["auth"], bool(e["tls"])) for e in envelopes(srv, 3))
    assert got == [("node0@example.com", "smtps", "app@example.com", True),
                   ("node1@example.com", "submission", "app@example.com", True),
                   ("php@example.com", "smtps", "app@example.com", True)]


# -- docs/admin.md ------------------------------------------------------------------------------------------


def test_admin_first_example(doc_server, bin_dir, tmp_path):
    srv = doc_server([])
    run_console(claimed_block("test_admin_first_example", "docs/admin.md", "$ exec 3<>/dev/tcp"), srv,
                shell_env(bin_dir, srv), tmp_path)


def admin_exchanges():
    """[(id, request line, [response and event lines])] of every admin block, in document order."""
    out = []
    for b in ALL_BLOCKS:
        if b.lang != "admin":
            continue
        for line in b.text.split("\n"):
            if line.startswith("> "):
                out.append([json.loads(line[2:]).get("id"), line[2:], []])
            elif line.startswith("< ") or line.strip() == "…":
                assert out, f"{b}: a response before any request"
                out[-1][2].append(line[2:] if line.startswith("< ") else "…")
            else:
                raise AssertionError(f"{b}: a line that is neither `> ` nor `< `: {line!r}")
    return out


ELIDED = "\u2026elided"
# Keys whose values differ from run to run: only their type is compared.
VOLATILE = {"uptime_ms": (int, float), "in": (int,), "out": (int,), "bytes_in": (int,), "bytes_out": (int,),
            "libuv": (str,), "wolfssl": (str,), "cjson": (str,),
            "connections": (int,),  # capacity.connections follows the machine's ulimit -n
            "port": (int,),  # scope.create's listeners: ports the kernel picks
            "delay_ms": (int, type(None)), "delays_ms": (list,)}  # client.report: what the client waited
PEM_RE = r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n"


def doc_json(text):
    """A documented JSON line, with `…` as a list item made a marker."""
    return json.loads(re.sub(r"(?<=[\[,])…(?=[,\]])", lambda _: json.dumps(ELIDED), text))


class Matcher:
    """Compares a documented value with the server's; message ids in the document map to the run's."""

    def __init__(self):
        self.ids = {}

    def string_regex(self, expected):
        out = []
        for p in re.split(rf"({TIME_RE}|{MSGID_RE}|127\.0\.0\.1:\d+|\d+ bytes|\d+ ms|…)", expected):
            if re.fullmatch(TIME_RE, p):
                out.append(TIME_RE)
            elif re.fullmatch(MSGID_RE, p):
                out.append(re.escape(self.ids[p]) if p in self.ids else f"(?P<id{len(out)}>{MSGID_RE})")
            elif re.fullmatch(r"127\.0\.0\.1:\d+", p):
                out.append(r"127\.0\.0\.1:\d+")
            elif re.fullmatch(r"\d+ (bytes|ms)", p):
                out.append(r"\d+ " + p.split()[1])
            elif p == "…":
                out.append(".*")
            else:
                out.append(re.escape(p))
        return "".join(out)

    def match(self, expected, actual, where="", key=None):
        if key in VOLATILE:
            assert isinstance(actual, VOLATILE[key]), f"{where}: {actual!r}"
        elif key == "pem":
            assert isinstance(actual, str) and re.fullmatch(PEM_RE, actual), f"{where}: {actual!r}"
        elif isinstance(expected, dict):
            assert isinstance(actual, dict) and list(actual) == list(expected), \
                f"{where}: keys {list(actual) if isinstance(actual, dict) else actual!r}, documented {list(expected)}"
            for k in expected:
                self.match(expected[k], actual[k], f"{where}.{k}", k)
        elif isinstance(expected, list):
            assert isinstance(actual, list) and self.match_list(expected, actual, where), \
                f"{where}: {actual!r}\ndocumented: {expected!r}"
        elif isinstance(expected, str):
            expected_ids = re.findall(MSGID_RE, expected)
            m = isinstance(actual, str) and re.fullmatch(self.string_regex(expected), actual, re.S)
            assert m, f"{where}: {actual!r}, documented {expected!r}"
            for doc_id, got in zip(expected_ids, re.findall(MSGID_RE, actual)):
                assert self.ids.setdefault(doc_id, got) == got, f"{where}: {doc_id} is {self.ids[doc_id]}, not {got}"
        else:
            assert type(actual) is type(expected) and actual == expected, \
                f"{where}: {actual!r}, documented {expected!r}"

    def match_list(self, expected, actual, where):
        """`ELIDED` items stand for any number of items."""
        if not expected:
            return not actual
        if expected[0] == ELIDED:
            return any(self.match_list(expected[1:], actual[i:], where) for i in range(len(actual) + 1))
        if not actual:
            return False
        saved = dict(self.ids)
        try:
            self.match(expected[0], actual[0], where)
        except AssertionError:
            self.ids = saved
            return False
        return self.match_list(expected[1:], actual[1:], where)

    def request(self, line):
        """A documented request line with the documented message ids replaced by the run's."""
        for doc_id, got in self.ids.items():
            line = line.replace(doc_id, got)
        return line


def smtp_session(srv, message, rcpt="alice@example.com", refused_first=False):
    """What the documented runs' client did (smtplib, EHLO app.example.org); returns when it has closed."""
    with smtplib.SMTP(srv.host, srv.port, local_hostname="app.example.org", timeout=IO_TIMEOUT) as s:
        s.ehlo()
        s.mail("app@example.org", [f"size={len(message)}"])
        if refused_first:
            assert s.rcpt(rcpt)[0] == 451
        assert s.rcpt(rcpt)[0] == 250
        assert s.data(message)[0] == 250
        s.quit()  # `quit`, as the documented run sent (leaving the with block sends `QUIT`)
    poll(lambda: admin_call(srv, {"cmd": "sessions.list"})["live"] == [], IO_TIMEOUT, message="the session to end")


def test_http_curl_examples(doc_server, bin_dir, tmp_path):
    """Every curl session of docs/http.md, in order, against one server started as `smtpfault` is."""
    srv = doc_server([])
    assert HTTP_CONSOLE, "docs/http.md has no console block"
    for b in HTTP_CONSOLE:
        run_console(claimed_block("test_http_curl_examples", b.file, b.first), srv, shell_env(bin_dir, srv), tmp_path)


def retry_story(srv):
    """client.report's documented run: the first RCPT to later@ refused with 421 three times, each retry
    waiting longer (0.2, 0.6, 1.5 s), then delivered; a message to nobody@ refused with 550 and not sent again."""
    admin_call(srv, {"cmd": "reset"})
    admin_call(srv, {"cmd": "profile.load", "profile": {"rules": [
        {"when": {"stage": "rcpt", "rcpt": "later@*", "times": 3}, "do": {"reply": "421 4.3.2 Busy, try again later"}},
        {"when": {"stage": "rcpt", "rcpt": "nobody@*"}, "do": {"reply": "550 5.1.1 No such user"}}]}})
    for wait, rcpt in ((0, "later"), (0.2, "later"), (0.6, "later"), (1.5, "later"), (0, "nobody")):
        time.sleep(wait)
        try:
            with smtplib.SMTP(srv.host, srv.port, timeout=IO_TIMEOUT) as s:
                s.sendmail("app@example.org", [f"{rcpt}@example.com"], b"Subject: story\r\n\r\nhello\r\n")
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPServerDisconnected):
            pass
    poll(lambda: admin_call(srv, {"cmd": "sessions.list"})["live"] == [], IO_TIMEOUT, message="the sessions to end")


def test_admin_transcripts(doc_server):
    """Every `> request` of docs/admin.md sent, in the order of its ids, each `< response` compared.

    Between them, this test plays the application as the documented run did: after the profile is loaded
    (ids up to 6), one session whose first RCPT is refused by it and whose retry is accepted (the message
    the next requests show, its bytes taken from messages.get's raw_base64); a message before
    messages.clear (16) and before reset (17), so each clears one; and after events.subscribe (24) a
    session whose events are compared with the documented ones; before client.report (25), retry_story.
    """
    exchanges = sorted(admin_exchanges(), key=lambda e: e[0] if isinstance(e[0], int) else 0)
    assert [e[0] for e in exchanges][:3] == ["a1", 1, 2], "the transcripts' ids changed: update this test"
    raw = next(e for e in exchanges if e[0] == 8)[2][0]
    message = base64.b64decode(doc_json(raw)["raw_base64"])
    srv = doc_server(["--certs-dir", str(suite_pki())])
    matcher = Matcher()
    plays = {7: lambda: smtp_session(srv, message, refused_first=True), 16: lambda: smtp_session(srv, message),
             17: lambda: smtp_session(srv, message), 25: lambda: retry_story(srv)}
    with srv.admin() as client:
        for ident, request, responses in exchanges:
            if ident in plays:
                plays[ident]()
            client.send(matcher.request(request).encode() + b"\n")
            actual = json.loads(client.read_line())
            while "ok" not in actual:  # after events.subscribe, the events of the plays come first
                actual = json.loads(client.read_line())
            matcher.match(doc_json(responses[0]), actual, f"response to {request}")
            if len(responses) > 1:  # events.subscribe: the events of the next session
                smtp_session(srv, message)
                events = client.events_until(lambda e: e["event"] == "close")
                got = [e for e in events if e.get("event")]
                expected = [ELIDED if r == "…" else doc_json(r) for r in responses[1:]]
                assert matcher.match_list(expected, got, "events"), f"events:\n{got}\ndocumented:\n{expected}"


def test_admin_ctl_session(doc_server, bin_dir, tmp_path):
    """The `smtpfault ctl` session: flaky-rcpt.json and broken.json are the profiles of the profile.load
    examples above it; before `ctl messages`, the application sends one 91-byte message to alice (its first
    RCPT refused by flaky-rcpt, the retry accepted)."""
    exchanges = {e[0]: json.loads(e[1]) for e in admin_exchanges()}
    (tmp_path / "flaky-rcpt.json").write_text(json.dumps(exchanges[4]["profile"], indent=2))
    (tmp_path / "broken.json").write_text(json.dumps(exchanges[5]["profile"], indent=2))
    srv = doc_server([])
    body = b"Subject: Hello\r\n\r\n"
    message = body + b"x" * (91 - len(body) - 2) + b"\r\n"
    run_console(claimed_block("test_admin_ctl_session", "docs/admin.md", "$ smtpfault ctl load flaky-rcpt.json"),
                srv, shell_env(bin_dir, srv), tmp_path,
                before={"smtpfault ctl messages": lambda: smtp_session(srv, message, refused_first=True)})


# -- docs/profiles.md and docs/errors.md --------------------------------------------------------------------


def check_target(b):
    """The file a `$ smtpfault check FILE` console block right after json block b checks, else None."""
    after = [x for x in ALL_BLOCKS if x.file == b.file and x.line > b.line]
    if after and after[0].lang == "console":
        m = re.match(r"\$ smtpfault check (\S+\.json)$", after[0].first)
        return m and m.group(1)
    return None


def test_json_profiles(bin_dir, tmp_path):
    """Every `json` block is a profile `smtpfault check` accepts, but the broken one checked after it."""
    profiles = [b for b in ALL_BLOCKS if b.lang == "json" and not b.meta]
    assert len(profiles) >= 10
    for i, b in enumerate(profiles):
        if check_target(b):
            continue
        path = tmp_path / f"profile{i}.json"
        path.write_text(b.text)
        status, out = run_shell(f"smtpfault check {path}", shell_env(bin_dir, None), tmp_path)
        assert status == 0, f"{b}: smtpfault check says:\n{out}"


def test_profile_check_errors(bin_dir, tmp_path):
    console = claimed_block("test_profile_check_errors", "docs/profiles.md", "$ smtpfault check broken.json")
    broken = [b for b in ALL_BLOCKS if b.lang == "json" and check_target(b) == "broken.json"]
    assert len(broken) == 1, "docs/profiles.md shows the broken.json it checks, right before the check"
    (tmp_path / "broken.json").write_text(broken[0].text)
    run_console(console, None, shell_env(bin_dir, None), tmp_path)
    status, _ = run_shell("smtpfault check broken.json", shell_env(bin_dir, None), tmp_path)
    assert status == 1


def test_errors_md_commands(doc_server, bin_dir):
    """docs/errors.md's introduction (rendered by gen_errors_md.py with a real profile name)."""
    test = "test_errors_md_commands"
    srv = run_sh(claimed_block(test, "docs/errors.md", "smtpfault --profile"), doc_server,
                 lambda s: shell_env(bin_dir, s), REPO_ROOT)
    name = server_args(block("docs/errors.md", "smtpfault --profile").first)[1]
    assert admin_call(srv, {"cmd": "profile.get"})["name"] == name
    admin_call(srv, {"cmd": "profile.clear"})
    commands = claimed_block(test, "docs/errors.md", "smtpfault ctl load")
    env = shell_env(bin_dir, srv)
    for command in sh_commands(commands):
        admin_call(srv, {"cmd": "profile.clear"})
        status, out = run_shell(command, env, REPO_ROOT)
        assert status == 0, f"`{command}` exited {status}: {out}"
        assert admin_call(srv, {"cmd": "profile.get"})["name"] == name, f"after `{command}`"


# -- docs/scopes.md -----------------------------------------------------------------------------------------


def test_scopes_md(doc_server, bin_dir, tmp_path):
    """The shell session against a fresh server (so the first scope is s1), then the parallel examples against
    one server, run from a copy of examples/parallel (pytest writes beside the tests) whose ../../../clients is
    this checkout's: Python with Debian's python3 (which has pytest-xdist) and the package from clients/python
    (PYTEST_PLUGINS loads the plugin its entry point would), Node with the package and tests/clients'
    Nodemailer on NODE_PATH, PHP with Debian's phpunit and PHPMailer. Every test of each ran: the server
    fired each fault once per test."""
    srv = doc_server([])
    run_sh(claimed_block("test_scopes_md", "docs/scopes.md", "smtpfault ctl scope create"), lambda a: srv,
           lambda s: shell_env(bin_dir, srv), tmp_path)
    if subprocess.run(["/usr/bin/python3", "-c", "import xdist"], capture_output=True).returncode != 0:
        pytest.skip("python3-pytest-xdist is not installed")
    if shutil.which("node") is None or not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
        pytest.skip("node or tests/clients/node_modules/nodemailer is missing")
    if shutil.which("phpunit") is None or not PHPMAILER_AUTOLOAD.exists():
        pytest.skip("Debian's phpunit or libphp-phpmailer is missing")
    shutil.copytree(REPO_ROOT / "examples" / "parallel", tmp_path / "examples" / "parallel",
                    ignore=shutil.ignore_patterns("node_modules", "vendor"))
    (tmp_path / "clients").symlink_to(REPO_ROOT / "clients")
    node_path = tmp_path / "node-path"
    node_path.mkdir()
    (node_path / "smtpfault").symlink_to(REPO_ROOT / "clients" / "node")
    env = debian_python_first(shell_env(bin_dir, srv, {
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO_ROOT / "clients" / "python" / "src"),
        "PYTEST_PLUGINS": "smtpfault.pytest_plugin", "NODE_PATH": f"{node_path}:{CLIENTS_DIR / 'node_modules'}"}),
        tmp_path)
    before = {fault: len(re.findall(fault, srv.log())) for fault in ("at rcpt: reply 550", "at greeting: reply 421")}
    run_sh(claimed_block("test_scopes_md", "docs/scopes.md", "cd examples/parallel/python"), None, lambda s: env,
           tmp_path)
    for fault, count in before.items():
        assert len(re.findall(fault, srv.log())) - count == 3 * 8, f"{fault}: 8 tests in each of 3 languages"
    assert admin_call(srv, {"cmd": "scope.list"})["scopes"] == [], "every test's scope ended with it"


# -- docs/clients.md ---------------------------------------------------------------------------------------


def test_clients_md_without_frameworks(bin_dir, tmp_path):
    """The Python and PHP programs without a test framework: each starts its own server (SMTPFAULT_BIN), sends
    through a scope as its comments say, and prints the captured message's AUTH user. The PHP one in a
    project that composer installed from the documented composer.json (the package a copy of clients/php
    beside it, packagist.org off: no network here)."""
    test = "test_clients_md_without_frameworks"
    env = shell_env(bin_dir, None, {"SMTPFAULT_BIN": str(smtpfault_bin()), "PYTHONDONTWRITEBYTECODE": "1",
                                    "PYTHONPATH": str(REPO_ROOT / "clients" / "python" / "src")})
    script = tmp_path / "send.py"
    script.write_text(claimed_block(test, "docs/clients.md", "import smtplib, ssl\nfrom smtpfault import SmtpFault").text)
    proc = subprocess.run(["/usr/bin/python3", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and proc.stdout == "app@gmail.com\n", proc.stdout + proc.stderr

    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(REPO_ROOT / "clients" / "php", tmp_path / "smtpfault" / "clients" / "php",
                    ignore=shutil.ignore_patterns("vendor"))  # the documented url: ../smtpfault/clients/php
    (project / "composer.json").write_text(
        claimed_block(test, "docs/clients.md", '{\n    "require": { "smtpfault/smtpfault"').text)
    env = composer_env(env, tmp_path)
    status, out = run_shell("composer config -g repositories.packagist.org false && composer install", env, project)
    assert status == 0, out
    assert (project / "vendor" / "smtpfault" / "smtpfault" / "src" / "Client.php").exists()
    (project / "send.php").write_text(claimed_block(test, "docs/clients.md", "<?php\nrequire 'vendor").text)
    status, out = run_shell("php send.php", env, project)
    assert status == 0 and out == "app@gmail.com\n", out


# -- docs/tls.md --------------------------------------------------------------------------------------------


def test_tls_clients(doc_server, bin_dir, tmp_path):
    """Every client snippet of "Clients, with verification on", against a server with the suite's test PKI
    (/tmp/pki) and the account the snippets use; each listener each snippet names gets one message."""
    test = "test_tls_clients"
    paths = {"/tmp/pki": suite_pki()}
    srv = doc_server(["--certs-dir", str(suite_pki()), "--user", "app@example.com:app-password"])
    env = shell_env(bin_dir, srv)
    count = 0

    run_node_fragment(claimed_block(test, "docs/tls.md", "const fs = require('node:fs');"), srv, env, tmp_path, paths)
    count += 3
    listeners = [e["listener"] for e in envelopes(srv, count)]
    assert listeners == ["smtps", "submission", "smtp"]

    php = claimed_block(test, "docs/tls.md", "$mail = new PHPMailer")
    head, _, choices = php.text.partition("// then one of:\n")
    for choice in [c for c in choices.split("\n") if c.strip()]:  # each alternative, as the comment says
        run_php_fragment(php, srv, env, tmp_path, paths, text=head + choice)
        count += 1
        assert envelopes(srv, count)[-1]["listener"] in ("smtps", "submission", "smtp")
    assert [e["listener"] for e in envelopes(srv, count)[-3:]] == ["smtps", "submission", "smtp"]

    python = claimed_block(test, "docs/tls.md", "import smtplib, ssl")
    script = tmp_path / "fragment.py"
    script.write_text("from email.message import EmailMessage\nmsg = EmailMessage()\nmsg['From'] = 'app@example.com'\n"
                      "msg['To'] = 'python@example.com'\nmsg['Subject'] = 'docs'\nmsg.set_content('hi')\n"
                      + substitute(python.text, srv, paths))
    proc = subprocess.run(["python3", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count += 2
    assert [e["listener"] for e in envelopes(srv, count)[-2:]] == ["smtps", "submission"]
    # The envelope fragment the page shows is what Python's SMTP_SSL message got.
    fragment = json.loads("{" + block("docs/tls.md", '"listener": "smtps"').text + "}")
    assert {k: envelopes(srv, count)[-2][k] for k in fragment} == fragment
    # And the lines the server logs at start.
    for line in block("docs/tls.md", "info: listening for smtp").text.split("\n"):
        assert re.search(rf"^{TIME_RE} {re.escape(substitute(line, srv))}$", srv.log(), re.M), line

    if not os.path.exists(SWAKS):
        pytest.skip("swaks is not installed")
    swaks = claimed_block(test, "docs/tls.md", "swaks --server localhost")
    for command in swaks.text.replace("\\\n", " ").split("\n"):
        status, out = run_shell(substitute(command, srv, paths), env, tmp_path)
        assert status == 0, f"`{command}` exited {status}:\n{out}"
        count += 1
    got = envelopes(srv, count)[-3:]
    assert [(e["listener"], e["auth"], bool(e["tls"])) for e in got] == [
        ("smtps", "app@example.com", True), ("submission", "app@example.com", True), ("smtp", None, True)]


# -- what the server writes ---------------------------------------------------------------------------------


def same_shape(expected, actual, where="value"):
    """The same keys in the same order, recursively, and values of the same JSON types."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), \
            f"{where}: {list(actual) if isinstance(actual, dict) else actual!r}, documented {list(expected)}"
        for k in expected:
            same_shape(expected[k], actual[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), \
            f"{where}: {actual!r}, documented {expected!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            same_shape(e, a, f"{where}[{i}]")
    else:
        kinds = (bool,) if isinstance(expected, bool) else (int, float) if isinstance(expected, (int, float)) else \
            (type(expected),)
        assert isinstance(actual, kinds) and not (bool in kinds) ^ isinstance(actual, bool), \
            f"{where}: {actual!r}, documented {expected!r}"


def test_json_outputs(doc_server, short_tmp):
    """docs/server.md's ports file, envelope and JSON log line have the shape of what the server writes: a
    server with a TCP and a unix admin socket and JSON logs, and a message sent as the documented one was
    (submission, STARTTLS, AUTH, no SIZE)."""
    outputs = [b for b in ALL_BLOCKS if b.file == "docs/server.md" and b.lang == "json" and b.meta == "output"]
    ports, envelope, log_line = (json.loads(b.text) for b in outputs)
    srv = doc_server(["--certs-dir", str(suite_pki()), "--user", "app@example.test:secret", "--admin",
                      f"unix:{short_tmp}/admin.sock", "--log-format", "json"])
    same_shape(ports, json.loads(srv.ports_file.read_text()), "ports file")

    host, port = srv.ports["submission"]["host"], srv.ports["submission"]["port"]
    with smtplib.SMTP(host, port, local_hostname="client.example.test", timeout=IO_TIMEOUT) as s:
        s.starttls(context=ssl.create_default_context(cafile=str(suite_pki() / "ca.pem")))
        s.ehlo()
        s.login("app@example.test", "secret")
        s.mail("app@example.test")
        s.rcpt("alice@example.test")
        s.data(b"Subject: docs\r\n\r\nhi\r\n")
    same_shape(envelope, stored(srv, 1)[0].envelope, "envelope")
    same_shape(log_line, json.loads(srv.wait_for_log(r'(?m)^\{.*"event":"command".*\}$')[0]), "log line")


def test_startup_errors():
    """The start errors the docs quote: a remote admin address without --admin-remote and a bad value (exit 2,
    before any listener opens), and a port in use (exit 1): each quoted line is what the server prints."""
    ephemeral = ["--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0", "--smtps", "127.0.0.1:0", "--admin",
                 "127.0.0.1:0"]
    remote = block("docs/admin.md", "smtpfault: --admin 0.0.0.0").text
    usage, in_use = block("docs/server.md", "smtpfault: --max-recipients").text.split("\n")
    proc = run_binary([*ephemeral, "--admin", "0.0.0.0:2580"])  # refused before it could listen anywhere
    assert proc.returncode == 2 and proc.stderr.split("\n")[0] == remote, proc.stderr
    proc = run_binary([*ephemeral, "--max-recipients", "5"])
    assert proc.returncode == 2 and proc.stderr.split("\n")[0] == usage, proc.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_binary([*ephemeral, "--smtp", f"127.0.0.1:{port}"])
    line = re.escape(in_use.replace("2525", str(port))).replace(re.escape(re.match(TIME_RE, in_use).group(0)), TIME_RE)
    assert proc.returncode == 1 and re.search(rf"^{line}$", proc.stderr, re.M), proc.stderr


# -- links --------------------------------------------------------------------------------------------------


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    text = re.sub(r"^ *```.*?^ *```", "", path.read_text(), flags=re.S | re.M)
    seen, out = {}, set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for heading in re.findall(r"^#+ (.*)$", text, re.M):
        s = slug(heading)
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


def test_relative_links_resolve():
    """Every relative link of README.md, docs/ and examples/ points at a file that exists, and at a heading
    (or an <a id>) of it when it names one."""
    problems = []
    for doc in [*DOCS, *sorted((REPO_ROOT / "examples").rglob("*.md"))]:
        if "node_modules" in doc.parts:
            continue
        text = re.sub(r"^ *(```|~~~).*?^ *\1", "", doc.read_text(), flags=re.S | re.M)
        text = re.sub(r"`[^`\n]*`", "", text)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            if not path.exists():
                problems.append(f"{doc.relative_to(REPO_ROOT)}: {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                problems.append(f"{doc.relative_to(REPO_ROOT)}: {target}: no such anchor")
    assert not problems, "\n".join(problems)
