"""The command line: help, user add, token, and the server starting for real."""

import os
import subprocess
import sys
import time

import pytest
import requests

from .helpers import free_port, run_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_help_lists_the_settings_and_commands():
    out = run_app("--help").stdout
    for word in ("--data-dir", "--port", "--host", "--threads", "SYNC_DATA_DIR", "user", "token"):
        assert word in out


def test_user_add_then_login(tmp_path):
    data = str(tmp_path / "data")
    result = run_app("user", "add", "alice", "--password-stdin", "--create", "--data-dir", data,
                 input="s3cret-pass\n")
    assert result.returncode == 0, result.stderr
    from sync import auth
    from sync.config import Config
    from sync.wsgi import open_runtime
    open_runtime(Config.build(data_dir=data))
    from sync.models import User
    assert auth.verify_password("s3cret-pass", User.get(User.name == "alice").password_hash)


def test_empty_password_is_refused(tmp_path):
    result = run_app("user", "add", "alice", "--password-stdin", "--create",
                 "--data-dir", str(tmp_path), input="\n")
    assert result.returncode != 0 and "empty" in result.stderr


def test_token_honours_sync_data_dir(tmp_path):
    import jwt
    data = str(tmp_path / "data")
    result = run_app("token", "alice", "--ttl", "120", "--create", env={"SYNC_DATA_DIR": data})
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    with open(os.path.join(data, "secret.key"), "rb") as f:
        secret = f.read().strip()
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["exp"] - int(claims["iat"]) == 120


def test_bad_setting_is_a_clear_error(tmp_path):
    result = run_app("--port", "notaport", "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "error" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_server_starts_and_answers(tmp_path):
    port = free_port()
    env = dict(os.environ, SYNC_DATA_DIR=str(tmp_path / "data"), SYNC_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        deadline = time.time() + 20
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert time.time() < deadline
                time.sleep(0.1)
        assert resp.json() == {"status": "ok"}
        token = run_app("token", "alice",
                        env={"SYNC_DATA_DIR": str(tmp_path / "data")}).stdout.strip()
        resp = requests.get(f"http://127.0.0.1:{port}/api/v1/sync/devices",
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert resp.json() == {"devices": []}
        assert os.stat(tmp_path / "data" / "secret.key").st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()  # no server outlives the test
            proc.communicate()
            raise
    assert token not in err  # the access log never shows a token
    assert "GET /api/v1/sync/devices 200" in err


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_app("--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr
