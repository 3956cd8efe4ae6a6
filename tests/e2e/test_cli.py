"""
The command line as a new user meets it: exact long options (getopt_long alone takes any unambiguous
prefix, so `--port 2525` became `--ports-file 2525`), `smtpfault help [SUBCOMMAND]`, subcommands that take
profile names wherever a profile is taken, an admin address refused before any listener opens, and an
installed tree (`make install`, here `cmake --install`) that finds its profiles from any directory.
"""

import json
import os
import shutil
import socket
import subprocess

import pytest

from conftest import REPO_ROOT, run_binary, server_env, smtpfault_bin

PROFILES_DIR = REPO_ROOT / "faults" / "profiles"
SUBCOMMANDS = ("check", "profiles", "ctl", "certs", "help")


def usage_error(proc, message):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[0] == f"smtpfault: {message}", proc.stderr
    assert proc.stderr.splitlines()[-1] == "Try 'smtpfault --help' for more information."


@pytest.mark.parametrize("args,given", [
    (["--port", "2525"], "--port"),            # was --ports-file 2525: a file named 2525
    (["--host", "0.0.0.0"], "--host"),         # was --hostname 0.0.0.0
    (["--ports", "x.json"], "--ports"),
    (["--max-message", "10M"], "--max-message"),
    (["--quie"], "--quie"),
    (["--no-tl"], "--no-tl"),
    (["--profile=x", "--store=/tmp/x"], "--store"),
    (["--hostname", "--port", "--port"], "--port"),  # a value that looks like an option is still a value
])
def test_abbreviated_long_options_are_refused(tmp_path, args, given):
    proc = subprocess.run([str(smtpfault_bin()), *args], capture_output=True, text=True, timeout=30,
                          env=server_env(), cwd=tmp_path, stdin=subprocess.DEVNULL)
    usage_error(proc, f"unknown option '{given}'")
    assert list(tmp_path.iterdir()) == [], "nothing may be written for a refused command line"


def test_exact_options_with_values_that_look_like_prefixes():
    # --hostname takes "--port" as its value (the value is not checked as an option); --bogus is refused.
    usage_error(run_binary(["--hostname", "--port", "--bogus"]), "unknown option '--bogus'")
    assert run_binary(["--hostname", "--port", "--version"]).returncode == 0


@pytest.mark.parametrize("argv", [["help"], ["--help"], ["-h"]])
def test_help_lists_every_subcommand(argv):
    proc = run_binary(argv)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Usage: smtpfault [OPTIONS]")
    listed = [line.split()[0] for line in lines[lines.index("Subcommands:") + 1:] if line.startswith("  ")][:5]
    assert listed == list(SUBCOMMANDS), proc.stdout
    assert "--smtp ADDR" in proc.stdout and "--admin-token TOKEN" in proc.stdout


@pytest.mark.parametrize("sub,first_line", [
    ("check", "Usage: smtpfault check FILE|NAME|DIR..."),
    ("profiles", "Usage: smtpfault profiles [NAME|FILE]"),
    ("ctl", "Usage: smtpfault ctl [--admin ADDR] [--token TOKEN] [--scope ID] [--json] COMMAND [ARGS]"),
    ("certs", "Usage: smtpfault certs DIR [--hostname NAME]"),
    ("help", "Usage: smtpfault [OPTIONS]                 run the server"),
])
def test_help_subcommand_is_its_own_help(sub, first_line):
    proc = run_binary(["help", sub])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == first_line
    if sub != "help":
        assert run_binary([sub, "--help"]).stdout == proc.stdout


def test_help_and_subcommand_errors():
    usage_error(run_binary(["help", "nope"]), "help: no subcommand 'nope'")
    usage_error(run_binary(["frobnicate"]), "unknown subcommand 'frobnicate'")
    usage_error(run_binary(["--smtp", "127.0.0.1:0", "check"]),
                "unexpected argument 'check' (the subcommands come first: smtpfault help)")


def test_check_takes_names_files_and_directories(tmp_path):
    by_name = run_binary(["check", "gmail-535-bad-credentials"])
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.endswith('gmail-535-bad-credentials.json: ok ("gmail-535-bad-credentials", 1 rule)\n')

    whole = run_binary(["check", str(PROFILES_DIR)])
    assert whole.returncode == 0, whole.stderr
    assert len(whole.stdout.splitlines()) == len(list(PROFILES_DIR.glob("*.json")))

    (tmp_path / "good.json").write_text('{"name": "good", "rules": []}')
    (tmp_path / "bad.json").write_text('{"rules": [{"when": {"stage": "rcpt"}}]}')
    (tmp_path / "notes.txt").write_text("not a profile")
    mixed = run_binary(["check", str(tmp_path)])
    assert mixed.returncode == 1
    assert mixed.stdout == f'{tmp_path}/good.json: ok ("good", 0 rules)\n'
    assert mixed.stderr.startswith(f"{tmp_path}/bad.json: rules[0].do: missing")

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_binary(["check", str(empty)])
    assert nothing.returncode == 1 and nothing.stderr == f"{empty}: no *.json profile in this directory\n"

    unknown = run_binary(["check", "no-such-profile"])
    assert unknown.returncode == 1
    assert unknown.stderr == "no-such-profile: no such file or shipped profile (smtpfault profiles lists them)\n"


def test_profiles_name_prints_the_profile():
    proc = run_binary(["profiles", "connect-refused"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads((PROFILES_DIR / "connect-refused.json").read_text())
    missing = run_binary(["profiles", "no-such-profile"])
    assert missing.returncode == 1
    assert missing.stderr == "smtpfault: profiles: no profile named 'no-such-profile' (smtpfault profiles lists them)\n"
    usage_error(run_binary(["profiles", "a", "b"]), "profiles: one name at a time (smtpfault profiles [NAME])")


def test_admin_address_refused_before_any_listener_opens(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ports_file = tmp_path / "ports.json"
    proc = run_binary(["--smtp", f"127.0.0.1:{port}", "--submission", "off", "--smtps", "off",
                       "--admin", "0.0.0.0:0", "--ports-file", str(ports_file)], timeout=15)
    usage_error(proc, "--admin 0.0.0.0 is not a loopback address: add --admin-remote to allow it "
                      "(and set --admin-token)")
    assert not ports_file.exists()
    # Refused while reading the command line: not one transcript line, so no listener was opened.
    assert "listening" not in proc.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`cmake --install` of the build under test into a fresh prefix, then moved elsewhere: nothing in the
    installed tree may depend on the source tree or on where it was installed."""
    build_dir = smtpfault_bin().parent
    if not (build_dir / "cmake_install.cmake").exists():
        pytest.skip(f"{smtpfault_bin()} is not in a CMake build directory")
    base = tmp_path_factory.mktemp("install")
    proc = subprocess.run(["cmake", "--install", str(build_dir), "--prefix", str(base / "prefix")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    moved = base / "elsewhere"
    shutil.move(str(base / "prefix"), str(moved))
    return moved


def test_installed_tree_finds_its_profiles_from_any_directory(installed, tmp_path):
    binary = installed / "bin" / "smtpfault"
    assert binary.exists()
    assert (installed / "share" / "doc" / "smtpfault" / "profiles.md").exists()
    env = {k: v for k, v in server_env().items() if k != "SMTPFAULT_PROFILES"}
    listed = subprocess.run([str(binary), "profiles"], capture_output=True, text=True, timeout=30, env=env,
                            cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == sorted(p.stem for p in PROFILES_DIR.glob("*.json"))
    shown = subprocess.run([str(binary), "check", "connect-refused"], capture_output=True, text=True,
                           timeout=30, env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (f"{installed}/bin/../share/smtpfault/profiles/connect-refused.json: "
                            'ok ("connect-refused", 1 rule)\n')


def test_smtpfault_profiles_directories_come_first(installed, tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "connect-refused.json").write_text('{"name": "my-own", "description": "mine", "rules": []}')
    env = dict(server_env(), SMTPFAULT_PROFILES=str(own))
    proc = subprocess.run([str(installed / "bin" / "smtpfault"), "check", "connect-refused"],
                          capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f'{own}/connect-refused.json: ok ("my-own", 0 rules)\n'
