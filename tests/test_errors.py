"""The one JSON error shape, for our errors and Falcon's own."""

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
