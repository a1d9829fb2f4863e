"""App passwords (SPEC §10): created and revoked with a user token only,
shown once, stored as a hash, revoked with their device; and the
``app.py app-password`` command."""

import os
import re
import sqlite3

import pytest

from sync import auth
from sync.db import database

from .helpers import assert_error, run_app

FORMAT = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")


def stored_hash(device_id):
    return database.execute_sql("SELECT app_password_hash FROM devices WHERE id = ?",
                                (device_id,)).fetchone()[0]


def test_a_new_password_is_random_grouped_and_shown_once(api, device):
    first = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    second = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    for password in (first, second):
        assert FORMAT.match(password), password
        assert len(password.replace("-", "")) >= 20
    assert first != second
    record = api.get(f"/devices/{device['id']}").json
    assert record["app_password"] is True
    assert "app_password_hash" not in record and second not in str(record)
    assert api.get("/devices").json["devices"][0]["app_password"] is True


def test_the_device_record_says_false_until_one_is_made(api, device):
    assert device["app_password"] is False
    assert api.get(f"/devices/{device['id']}").json["app_password"] is False


def test_only_a_hash_is_stored_and_it_authenticates_its_device(api, device):
    password = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    stored = stored_hash(device["id"])
    assert stored and password not in stored and password.replace("-", "") not in stored
    found = auth.app_password_device("alice", password)
    assert found.id == device["id"] and found.user.name == "alice"
    # Typed as people type it: without the dashes, in capitals.
    assert auth.app_password_device("alice", password.replace("-", "").upper()).id == device["id"]
    assert auth.app_password_device("bob", password) is None
    assert auth.app_password_device("alice", password[:-1] + "!") is None


def test_a_new_password_replaces_the_old(api, device):
    old = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    new = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    assert auth.app_password_device("alice", old) is None
    assert auth.app_password_device("alice", new).id == device["id"]


def test_delete_revokes_it(api, device):
    password = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    api.delete(f"/devices/{device['id']}/app-password", status=204)
    assert auth.app_password_device("alice", password) is None
    assert stored_hash(device["id"]) is None
    assert api.get(f"/devices/{device['id']}").json["app_password"] is False
    api.delete(f"/devices/{device['id']}/app-password", status=204)  # none left: still 204


def test_deleting_the_device_revokes_it(api, device):
    password = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    api.delete(f"/devices/{device['id']}", status=204)
    assert auth.app_password_device("alice", password) is None


@pytest.mark.parametrize("method", ["post", "delete"])
def test_a_device_token_is_refused(api, dev, device, method):
    before = api.post(f"/devices/{device['id']}/app-password").json["app_password"]
    resp = getattr(dev, method)(f"/devices/{device['id']}/app-password", status=403)
    assert_error(resp, 403, "forbidden")
    assert auth.app_password_device("alice", before).id == device["id"]  # unchanged


@pytest.mark.parametrize("method", ["post", "delete"])
def test_another_users_device_is_forbidden_and_unknown_is_404(api, bob, device, method):
    resp = getattr(bob, method)(f"/devices/{device['id']}/app-password", status=403)
    assert_error(resp, 403, "forbidden")
    assert stored_hash(device["id"]) is None
    resp = getattr(api, method)("/devices/nosuchdevice/app-password", status=404)
    assert_error(resp, 404, "not_found")


def test_the_alias_prefix_serves_the_same_route(api, device):
    alias = api.as_(api.token, prefix="/api/sync")
    password = alias.post(f"/devices/{device['id']}/app-password").json["app_password"]
    assert auth.app_password_device("alice", password).id == device["id"]
    alias.delete(f"/devices/{device['id']}/app-password", status=204)
    assert auth.app_password_device("alice", password) is None


def test_no_token_is_401(anon, device):
    resp = anon.post(f"/devices/{device['id']}/app-password", status=401)
    assert_error(resp, 401, "unauthorized")


# -- the command line ------------------------------------------------------------


def run(*args, data):
    return run_app(*args, "--data-dir", data)


def devices_of(data):
    conn = sqlite3.connect(os.path.join(data, "sync.sqlite3"))
    try:
        return conn.execute("SELECT d.id, d.name, d.app_password_hash FROM devices d "
                            "JOIN users u ON u.id = d.user_id WHERE u.name = 'alice'").fetchall()
    finally:
        conn.close()


def test_the_command_registers_a_device_and_prints_a_password(tmp_path):
    from sync.config import Config
    from sync.wsgi import open_runtime

    data = str(tmp_path / "data")
    auth.add_user(open_runtime(Config.build(data_dir=data, access_log=False)), "alice", "pw")
    first = run("app-password", "alice", "Kobo", data=data)
    assert first.returncode == 0, first.stderr
    password = first.stdout.strip()
    assert FORMAT.match(password) and "registered device 'Kobo'" in first.stderr
    [(device_id, name, stored)] = devices_of(data)
    assert name == "Kobo" and stored == auth.app_password_hash(password)
    # Again, by name and then by id: the same device, a new password.
    for ref in ("Kobo", device_id):
        again = run("app-password", "alice", ref, data=data)
        assert again.returncode == 0, again.stderr
        assert "registered" not in again.stderr
        [(same_id, _, stored)] = devices_of(data)
        assert same_id == device_id and stored == auth.app_password_hash(again.stdout.strip())


def test_the_command_refuses_an_unknown_user_in_one_line(tmp_path):
    from sync.config import Config
    from sync.wsgi import open_runtime

    data = str(tmp_path / "data")
    auth.add_user(open_runtime(Config.build(data_dir=data, access_log=False)), "alice", "pw")
    result = run("app-password", "nobody", "Kobo", data=data)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert "no user 'nobody'" in result.stderr and "user add" in result.stderr
    assert [name for _, name, _ in devices_of(data)] == []


def test_the_command_refuses_a_data_dir_without_a_database(tmp_path):
    """A mistyped --data-dir is refused, as by ``token`` and ``user add``,
    and nothing is made there: no database, no secret."""
    data = tmp_path / "typo"
    result = run("app-password", "alice", "Kobo", data=str(data))
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip() == (
        f"app.py: error: there is no database in {data}: check --data-dir (or "
        "SYNC_DATA_DIR), or make the user there first with `app.py user add NAME --create`")
    assert not data.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("app-password", "alice", "Kobo", data=str(empty)).returncode != 0
    assert os.listdir(empty) == []


def test_a_device_made_for_webdav_is_never_behind(rt, api, dev, testapp):
    """``app.py app-password`` registers a device that holds no copy of the
    library: it needs no acks, and does not keep tombstones from purging."""
    from sync import devices
    auth.ensure_user(rt, "alice")
    device, created, _ = devices.app_password_for(rt, "alice", "Kobo")
    assert created
    put = testapp.request("/dav/files/alice/a.txt", method="PUT", body=b"x",
                          headers={"Authorization": f"Bearer {dev.token}"})
    assert put.status_int == 201
    assert api.get(f"/devices/{dev.get('/devices').json['devices'][0]['id']}").json[
        "pending_changes"] == 1  # an ordinary device is behind by that change
    record = api.get(f"/devices/{device.id}").json
    assert record["pending_changes"] == 0 and record["acked_cursor"] is not None
    assert record["platform"] == "webdav" and record["app_password"] is True
