"""The package as a user installs it (SPEC §7): ``pip install .`` without
``-e`` into a fresh virtual environment, then ``sync-server`` started from
another directory serves ``/healthz`` and the API document, and
``sync-client`` runs.

The new environment reuses the dependencies already installed for the tests
(a ``.pth`` file naming this interpreter's site-packages), so the only thing
installed is this project, built from a copy of its source files."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time

import pytest
import requests
from openapi_spec_validator import validate

from .helpers import free_port

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a source archive holds: the build must need nothing else.
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "schema.sql",
           "docs/api/openapi.json", "sync")
INSTALL_TIMEOUT_S = 300
START_TIMEOUT_S = 30


def copy_sources(target):
    for rel in SOURCES:
        src, dst = os.path.join(ROOT, rel), os.path.join(target, rel)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)


def clean_env(**extra):
    """The environment without anything that points Python at this checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SYNC_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


def make_venv(path):
    """A virtual environment whose own site-packages comes first and which
    sees this interpreter's packages after it (never a ``.pth`` file there,
    so not the checkout's editable install)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = os.path.join(str(path), "bin", "python")
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    with open(os.path.join(own, "reused-test-packages.pth"), "w") as f:
        f.write("\n".join(sorted(ours)) + "\n")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, venv bin dir) with the project installed without ``-e``."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    copy_sources(str(source))
    python = make_venv(base / "venv")
    # pip re-runs itself with the new environment's interpreter; the build
    # backend (setuptools) comes from the configured indexes or, without
    # build isolation, from the reused packages.
    command = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet",
               "--no-deps", str(source)]
    try:
        import wheel  # noqa: F401
        command.insert(-1, "--no-build-isolation")
    except ImportError:
        pass
    result = subprocess.run(command, cwd=str(base), env=clean_env(), capture_output=True,
                            text=True, timeout=INSTALL_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    return python, os.path.dirname(python)


def test_the_installed_package_is_not_the_checkout(installed, tmp_path):
    python, _ = installed
    out = subprocess.run(
        [python, "-c", "import sync, sync.assets as a, sync.web.render as w; "
         "print(sync.__file__); print(a.path('schema.sql')); print(a.path('openapi.json')); "
         "print(w.HERE)"],
        cwd=str(tmp_path), env=clean_env(), check=True, capture_output=True, text=True).stdout
    package, schema, document, web = out.split()
    venv = os.path.dirname(os.path.dirname(python))
    for path in (package, schema, document, web):
        assert path.startswith(venv + os.sep), out
    with open(schema, encoding="utf-8") as f, \
            open(os.path.join(ROOT, "schema.sql"), encoding="utf-8") as g:
        assert f.read() == g.read()


def test_sync_server_from_another_directory(installed, tmp_path):
    _, bin_dir = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data_dir, port = tmp_path / "data", free_port()
    proc = subprocess.Popen(
        [os.path.join(bin_dir, "sync-server"), "--data-dir", str(data_dir), "--port", str(port)],
        cwd=str(elsewhere), env=clean_env(SYNC_ACCESS_LOG="false"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        output = ""
        while "listening on" not in output:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"the server exited: {output}"
            output += line
            assert time.monotonic() < deadline, f"the server did not start: {output}"
        base = f"http://127.0.0.1:{port}"
        health = requests.get(base + "/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        answer = requests.get(base + "/api/v1/openapi.json", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("application/json")
        document = answer.json()
        validate(document)
        with open(os.path.join(ROOT, "docs", "api", "openapi.json"), encoding="utf-8") as f:
            assert document == json.load(f)
        assert (data_dir / "sync.sqlite3").is_file()
        assert not (elsewhere / "data").exists()
        # The web page: its templates and static files come with the package.
        login = requests.get(base + "/login", timeout=10)
        assert login.status_code == 200 and "text/html" in login.headers["Content-Type"]
        assert '<label for="password">' in login.text
        for name in ("style.css", "upload.js", "sha256.js", "icon.svg"):
            assert requests.get(f"{base}/static/{name}", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_sync_client_from_another_directory(installed, tmp_path):
    _, bin_dir = installed
    result = subprocess.run([os.path.join(bin_dir, "sync-client"), "--help"], cwd=str(tmp_path),
                            env=clean_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "sync" in result.stdout and "init" in result.stdout
