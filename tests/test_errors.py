"""The one JSON error shape, for our errors and Falcon's own."""

import pytest

from .helpers import assert_error


def test_unknown_route_is_404_with_code(anon):
    resp = anon.get("/api/v1/sync/nothing-here", status=404)
    assert_error(resp, 404, "not_found")


def test_wrong_method_is_405_with_code(api):
    resp = api.request("PATCH", "/devices", status=405)
    assert_error(resp, 405, "method_not_allowed")


def test_healthz_needs_no_auth(anon):
    assert anon.get("/healthz").json == {"status": "ok"}


def test_openapi_document_is_served(anon):
    resp = anon.get("/api/v1/openapi.json")
    assert resp.content_type == "application/json"
    assert isinstance(resp.json, dict)


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/auth/login"),
    ("POST", "/devices"),
    ("PUT", "/devices/{device_id}"),
    ("POST", "/ack"),
    ("POST", "/report"),
    ("POST", "/upload"),
    ("POST", "/conflicts/0000/resolve"),
])
def test_every_json_body_over_2_mib_is_413_and_changes_nothing(dev, device, method, path):
    before = dev.get(f"/devices/{device['id']}").json
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = dev.request(method, path.format(device_id=device["id"]), raw=big,
                       content_type="application/json", status=413)
    assert_error(resp, 413, "body_too_large")
    assert dev.get(f"/devices/{device['id']}").json == before
    assert dev.get("/changes").json["changes"] == []
