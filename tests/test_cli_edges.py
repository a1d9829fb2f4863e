"""The rough edges of the command lines a new user meets first: a
mistyped data directory, durations and sizes in the forms the README
shows, flags spelled wrong, ``user add`` without a terminal or with a
short password, SIGTERM, a port in use (the client's flags:
test_client_cli.py). Every error is one line naming the flag and what it
takes."""

import os
import signal
import subprocess
import sys
import time

import jwt
import pytest
import requests

from sync import units

from .helpers import free_port, run_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_line_error(result):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# 9. token and user add need an existing database, or --create

@pytest.mark.parametrize("command", [["token", "alice"],
                                     ["user", "add", "alice", "--password-stdin"]])
def test_a_data_dir_without_a_database_is_refused_unless_create(tmp_path, command):
    data = tmp_path / "typo"
    line = one_line_error(run_app(*command, "--data-dir", str(data), input="long enough\n"))
    assert line == (f"app.py: error: there is no database in {data}: check --data-dir (or "
                    "SYNC_DATA_DIR), or add --create to make a new data directory there")
    assert not data.exists()
    result = run_app(*command, "--create", "--data-dir", str(data), input="long enough\n")
    assert result.returncode == 0, result.stderr
    assert (data / "sync.sqlite3").exists() and (data / "secret.key").exists()
    again = run_app(*command, "--data-dir", str(data), input="long enough\n")   # it exists now
    assert again.returncode == 0, again.stderr


# 10. durations and sizes, and flags named in errors

def test_token_ttl_takes_durations(tmp_path):
    data = str(tmp_path / "data")
    for ttl, seconds in (("1h", 3600), ("90", 90), ("30m", 1800), ("2d", 172800)):
        result = run_app("token", "alice", "--ttl", ttl, "--create", "--data-dir", data)
        assert result.returncode == 0, result.stderr
        claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
        assert claims["exp"] - int(claims["iat"]) == seconds


@pytest.mark.parametrize("args, expected", [
    (["token", "alice", "--ttl", "1 hour"],
     "argument --ttl: '1 hour' is not a duration: use seconds, or a number with s, m, h or d"),
    (["--port", "abc"], "--port: 'abc' is not a port number: use 1 to 65535"),
    (["--prot", "18101"], "unknown option --prot (did you mean --port?"),
    (["--max-file-size", "lots"], "--max-file-size: 'lots' is not a size: use bytes, or a "
                                  "number with KiB, MiB, GiB or TiB"),
    (["--upload-expiry", "soon"], "--upload-expiry: 'soon' is not a duration"),
    (["token", "alice", "--tt", "60"], "unknown option --tt (did you mean --ttl?"),
])
def test_bad_flags_are_one_line_naming_the_flag_and_its_forms(tmp_path, args, expected):
    line = one_line_error(run_app(*args, "--data-dir", str(tmp_path / "data")))
    assert expected in line
    assert not (tmp_path / "data").exists()


def test_an_environment_variable_is_named_when_its_value_is_bad(tmp_path):
    line = one_line_error(run_app("--data-dir", str(tmp_path / "d"), env={"SYNC_PORT": "http"}))
    assert "SYNC_PORT: 'http' is not a port number" in line


def test_units_take_the_documented_forms():
    assert units.parse_size("256KiB") == 256 * 1024
    assert units.parse_size("64MiB") == 64 * 1024 * 1024
    assert units.parse_size("1.5GiB") == 3 * 512 * 1024 * 1024
    assert units.parse_size("512k") == 512 * 1024 and units.parse_size("100") == 100
    assert units.parse_duration("30s") == 30 and units.parse_duration("24h") == 86400
    assert units.parse_duration("7d") == 7 * 86400 and units.parse_duration("1.5m") == 90
    for bad in ("", "abc", "1x", "-5", "nan", "inf"):
        with pytest.raises(ValueError):
            units.parse_duration(bad)
        with pytest.raises(ValueError):
            units.parse_size(bad)


# 11. user add: no terminal, short passwords, "updated"

def test_user_add_without_a_terminal_says_what_to_do(tmp_path):
    data = str(tmp_path / "data")
    line = one_line_error(run_app("user", "add", "bob", "--create", "--data-dir", data, input=""))
    assert "no terminal to ask for the password: pipe it in with --password-stdin" in line


def test_short_passwords_are_refused_and_a_reset_says_updated(tmp_path):
    data = str(tmp_path / "data")
    for short in ("x", "seven77"):
        line = one_line_error(run_app("user", "add", "bob", "--password-stdin", "--create",
                                  "--data-dir", data, input=short + "\n"))
        assert "too short: use at least 8 characters; nothing changed" in line
    first = run_app("user", "add", "bob", "--password-stdin", "--create", "--data-dir", data,
                input="eight888\n")
    assert first.returncode == 0 and first.stderr.strip() == "created user bob"
    second = run_app("user", "add", "bob", "--password-stdin", "--data-dir", data,
                 input="another-one\n")
    assert second.returncode == 0
    assert second.stderr.strip() == "updated user bob: the password is changed"


# 17. SIGTERM is logged; a port in use leaves no data directory behind

@pytest.mark.slow
def test_sigterm_logs_stopping_and_stopped(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "app.py", "--port", str(port),
                             "--data-dir", str(tmp_path / "data")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in proc.stdout.readline()
        deadline = time.time() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert time.time() < deadline
                time.sleep(0.1)
        # Requests keep coming while the signal arrives: it must stop the
        # server whatever the loop is doing at that moment.
        import threading
        busy = threading.Event()

        def hammer():
            with requests.Session() as session:
                while True:
                    try:
                        session.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    except requests.RequestException:
                        return
                    busy.set()

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        busy.wait(10)
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            raise AssertionError(proc.communicate(timeout=10))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    lines = err.splitlines()
    assert any(line.endswith("INFO sync stopping (SIGTERM)") for line in lines), err
    assert lines[-1].endswith("INFO sync stopped"), err


@pytest.mark.slow
def test_ctrl_c_logs_stopping_and_stopped(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir",
                             str(tmp_path / "data")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "INFO sync stopping (Ctrl-C)" in err and err.splitlines()[-1].endswith("sync stopped")


def test_a_port_in_use_creates_no_data_directory(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_line_error(run_app("--port", str(port), "--data-dir", str(tmp_path / "new")))
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line
    assert not (tmp_path / "new").exists()


# 17. restore says it migrates only when it will

def test_restore_says_it_migrates_only_an_older_database(tmp_path):
    from sync.db import SCHEMA_VERSION
    old = run_app("restore", os.path.join(ROOT, "tests", "data", "v1"),
              "--data-dir", str(tmp_path / "from-v1"))
    assert old.returncode == 0, old.stderr
    assert old.stdout.splitlines()[-1] == (
        "  start the server: the backup's database is at schema 1, and the server migrates "
        f"it to {SCHEMA_VERSION} on start (after copying it)")
    data = str(tmp_path / "data")
    assert run_app("token", "alice", "--create", "--data-dir", data).returncode == 0
    assert run_app("backup", str(tmp_path / "bk"), "--data-dir", data).returncode == 0
    new = run_app("restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "restored"))
    assert new.returncode == 0, new.stderr
    assert new.stdout.splitlines()[-1] == "  start the server"
    assert "server migrates" not in new.stdout


@pytest.mark.slow
def test_sigterm_answers_a_waiting_request_and_stops(tmp_path):
    """A live client holding ``POST /changes/wait`` (up to 55 s) neither
    keeps the server from stopping nor loses its answer: the wait answers
    ``{"changes": false}`` and the server exits."""
    import json
    import socket
    data = str(tmp_path / "data")
    env = {"SYNC_JWT_SECRET": "sigterm-test-secret-sigterm-test-secret"}
    token = run_app("token", "alice", "--create", "--data-dir", data, env=env).stdout.strip()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", "0", "--data-dir", data],
                            cwd=ROOT, env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line
        base = line.split("listening on ", 1)[1].split()[0]
        api = base + "/api/v1/sync"
        device = requests.post(api + "/devices", json={"name": "Laptop"}, timeout=30,
                               headers={"Authorization": f"Bearer {token}"}).json()
        auth = f"Bearer {device['token']}"
        cursor = requests.get(api + "/changes", headers={"Authorization": auth},
                              timeout=30).json()["cursor"]
        body = json.dumps({"cursor": cursor, "timeout": 55}).encode()
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"POST /api/v1/sync/changes/wait HTTP/1.1\r\nHost: test\r\n"
                         + f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            # Answered on a connection opened after the wait was sent: the
            # server has read the wait by then.
            assert requests.get(base + "/healthz", timeout=30).status_code == 200
            proc.send_signal(signal.SIGTERM)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        _, err = proc.communicate(timeout=40)   # well before the wait's 55 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"changes": False}
    assert proc.returncode == 0
    assert err.splitlines()[-1].endswith("INFO sync stopped"), err
