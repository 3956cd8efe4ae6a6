"""The package as a user gets it: a wheel built offline, installed into an empty project's venv, where the
quick start of docs/clients.md runs under pytest-xdist with the plugin found through its entry point."""

import os
import re
import shutil
import subprocess
import sys

from conftest import PACKAGE, REPO_ROOT

STEP_TIMEOUT = 240  # seconds for one step (build, venv, install, the project's tests) on a loaded machine


def run(argv, cwd, **kw):
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                          stdin=subprocess.DEVNULL, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def quick_start():
    """The Python quick start of docs/clients.md: the first python block of its ## Python section."""
    section = (REPO_ROOT / "docs" / "clients.md").read_text().split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)


def test_wheel_installs_into_an_empty_project_and_the_quick_start_runs(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
         tmp_path / "dist", source], tmp_path)
    wheels = list((tmp_path / "dist").glob("smtpfault-*.whl"))
    assert [w.name for w in wheels] == ["smtpfault-0.1.0-py3-none-any.whl"]

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path)
    run([venv / "bin" / "python", "-m", "pip", "install", "--no-index", "--no-deps", wheels[0]], tmp_path)

    project = tmp_path / "project"
    project.mkdir()
    (project / "test_signup.py").write_text(quick_start())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = run([venv / "bin" / "python", "-m", "pytest", "-v", "-p", "no:cacheprovider", "-n", "2"], project,
               env=env)
    assert re.search(r"plugins: .*smtpfault-0\.1\.0", proc.stdout), proc.stdout
    assert re.search(r"\b2 passed\b", proc.stdout), proc.stdout
