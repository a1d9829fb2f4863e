"""The API document (SPEC §7) is valid OpenAPI, is what the build script
makes, and matches the routes and methods the app serves; the response
checker that guards the whole suite catches what it should."""

import importlib.util
import json
import os
import re

import pytest
from openapi_spec_validator import validate

from . import openapi_check
from .openapi_check import document, served_routes

METHODS = ("get", "head", "post", "put", "delete", "patch")


def _load_builder():
    path = openapi_check.ROOT + "/docs/api/build_openapi.py"
    spec = importlib.util.spec_from_file_location("build_openapi", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_operations():
    return [(template, method) for template, item in sorted(document()["paths"].items())
            for method in METHODS if method in item]


def test_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)


def test_committed_document_is_what_the_script_builds():
    with open(openapi_check.DOCUMENT, encoding="utf-8") as f:
        assert f.read() == _load_builder().render(), \
            "docs/api/openapi.json is out of date: run python docs/api/build_openapi.py"


def test_served_document_is_the_file(anon):
    resp = anon.get("/api/v1/openapi.json")
    assert resp.content_type == "application/json"
    assert resp.json == document()


def test_every_served_route_is_documented_and_every_documented_path_served(testapp):
    served = set(served_routes(testapp.app))
    documented = set(document()["paths"])
    assert served - documented == set(), "served but not in the API document"
    assert documented - served == set(), "in the API document but not served"


def test_the_web_pages_routes_are_left_out_of_the_api_document(testapp, rt):
    from sync.web import pages
    served = set(served_routes(testapp.app, pages=True))
    expected = {re.sub(r"\{(\w+):[^}]*\}", r"{\1}", t) for t, _ in pages.routes(rt)[0]}
    assert served == expected
    assert not served & set(document()["paths"])


def test_operation_ids_are_unique():
    ids = [document()["paths"][t][m]["operationId"] for t, m in documented_operations()]
    assert len(ids) == len(set(ids))


def test_alias_prefix_documents_the_same_operations():
    paths = document()["paths"]
    main = {t[len("/api/v1/sync"):]: item for t, item in paths.items()
            if t.startswith("/api/v1/sync/")}
    alias = {t[len("/api/sync"):]: item for t, item in paths.items()
             if t.startswith("/api/sync/")}
    assert set(main) == set(alias)
    for template, item in main.items():
        for method, operation in item.items():
            other = alias[template][method]
            assert _unaliased(other["responses"]) == operation["responses"]
            assert other.get("requestBody") == operation.get("requestBody")
            assert other.get("parameters") == operation.get("parameters")


def _unaliased(responses):
    """``responses`` with its links pointing to the main prefix's operations."""
    text = json.dumps(responses)
    return json.loads(re.sub(r'("operationId": "\w+)Alias"', r'\1"', text))


def test_every_served_method_is_documented_and_every_documented_method_served(testapp):
    """The responders of each route's resource are its documented operations.
    OPTIONS, Falcon's built-in answer on every route, is left out."""
    paths = document()["paths"]
    for template, (resource, methods) in sorted(served_routes(testapp.app).items()):
        documented = {m for m in METHODS if m in paths[template]}
        assert methods == documented, template


def test_alias_routes_are_served_by_the_same_resources(testapp):
    routes = served_routes(testapp.app)
    for template, (resource, _) in routes.items():
        if template.startswith("/api/sync/"):
            assert routes["/api/v1/sync/" + template[len("/api/sync/"):]][0] is resource


@pytest.mark.parametrize("template,method", [
    (t, m) for t, m in documented_operations()
    if document()["paths"][t][m].get("security") != []])
def test_every_authenticated_operation_answers_401_without_a_token(anon, template, method):
    url = re.sub(r"\{[^}]+\}", "1", template)
    resp = anon.request(method.upper(), url, status=401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    if method != "head":
        assert resp.json["code"] == "unauthorized"


def test_documented_bounds_match_the_code():
    from sync import conflicts, devices, feed, library, paths, uploads
    from sync.resources import common
    schemas = document()["components"]["schemas"]
    operations = {document()["paths"][t][m]["operationId"]: document()["paths"][t][m]
                  for t, m in documented_operations()}
    assert schemas["DeviceCreate"]["properties"]["name"]["maxLength"] == devices.MAX_DEVICE_NAME
    assert schemas["LibraryPath"]["maxLength"] == paths.MAX_PATH_BYTES
    assert _load_builder().MAX_JSON_BODY == common.MAX_JSON_BODY
    assert _load_builder().MAX_INT == library.MAX_INT
    changes = schemas["ReportRequest"]["properties"]["changes"]
    assert (changes["minItems"], changes["maxItems"]) == (1, library.MAX_REPORT_ITEMS)
    limit = next(p for p in operations["listChanges"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, feed.MAX_LIMIT)
    assert limit["schema"]["default"] == feed.DEFAULT_LIMIT
    chunk = schemas["UploadCreate"]["properties"]["chunk_size"]
    assert (chunk["minimum"], chunk["maximum"], chunk["default"]) == (
        uploads.MIN_CHUNK_SIZE, uploads.MAX_CHUNK_SIZE, uploads.DEFAULT_CHUNK_SIZE)
    resolutions = schemas["ResolveRequest"]["properties"]["resolution"]["enum"]
    assert tuple(resolutions) == conflicts.RESOLUTIONS


# The checker itself.

class FakeResponse:
    def __init__(self, status, body=None, headers=None, raw=None):
        self.status_int = status
        self.body = raw if raw is not None else (b"" if body is None else
                                                 json.dumps(body).encode())
        self.headers = dict(headers or {})
        if body is not None:
            self.headers.setdefault("Content-Type", "application/json")


DEVICE = {"id": "d1", "name": "Kobo", "platform": None, "created_at": "2026-11-27T00:00:00Z",
          "last_seen_at": None, "acked_cursor": None, "pending_changes": 0,
          "app_password": False}


def test_checker_accepts_a_documented_answer():
    openapi_check.check_response("GET", "/api/v1/sync/devices/d1/?x=1", FakeResponse(200, DEVICE))
    openapi_check.check_response("GET", "/api/sync/devices", FakeResponse(200, {"devices": []}))
    openapi_check.check_response("POST", "/api/v1/sync/upload/u1/complete", FakeResponse(
        400, {"title": "t", "description": "d", "code": "chunks_missing", "missing": [0, 2]}))


@pytest.mark.parametrize("method,url,resp,message", [
    ("GET", "/api/v1/sync/devices/d1", FakeResponse(418, DEVICE), "does not list"),
    ("GET", "/api/v1/sync/devices/d1", FakeResponse(200, {**DEVICE, "extra": 1}),
     "does not match"),
    ("GET", "/api/v1/sync/devices/d1", FakeResponse(200, {**DEVICE, "created_at": "today"}),
     "does not match"),
    ("GET", "/api/v1/sync/devices/d1", FakeResponse(200, raw=b"x",
                                                    headers={"Content-Type": "text/plain"}),
     "Content-Type"),
    ("DELETE", "/api/v1/sync/devices/d1", FakeResponse(204, DEVICE), "lists no body"),
    ("GET", "/api/v1/sync/devices", FakeResponse(401, {"title": "t", "description": "d",
                                                       "code": "unauthorized"}),
     "WWW-Authenticate"),
    ("GET", "/api/v1/sync/devices/d1", FakeResponse(404, {"title": "t", "description": "d",
                                                          "code": "gone"}),
     "does not match"),
    ("POST", "/api/v1/sync/upload/u1/complete",
     FakeResponse(400, {"title": "t", "description": "d", "code": "chunks_missing"}),
     "does not match"),
    ("PATCH", "/api/v1/sync/devices", FakeResponse(200, {}), "not in the API document"),
    ("GET", "/api/v1/sync/nothing", FakeResponse(200, {}), "not in the API document"),
])
def test_checker_rejects_what_the_document_does_not_allow(method, url, resp, message):
    with pytest.raises(AssertionError, match=message):
        openapi_check.check_response(method, url, resp)


def test_checker_matches_multi_segment_download_paths():
    assert openapi_check.find_template("/api/v1/sync/download/books/sf/Dune.epub") == \
        "/api/v1/sync/download/{path}"
    assert openapi_check.find_template("/api/sync/upload/u1/chunks/3") == \
        "/api/sync/upload/{upload_id}/chunks/{index}"
    assert openapi_check.find_template("/api/v1/sync/download/a%0Ab") == \
        "/api/v1/sync/download/{path}"
    assert openapi_check.find_template("/api/v1/sync/devices%0A") is None


def test_error_schema_names_every_documented_code():
    """The Error schema's list of codes is the union of the operations' codes
    (plus ``method_not_allowed``, the answer to an unlisted method)."""
    description = document()["components"]["schemas"]["Error"]["description"]
    listed = set(re.findall(r"`(\w+)`", description.split("contract:", 1)[1]))
    used = {"method_not_allowed"}
    for template, method in documented_operations():
        for response in document()["paths"][template][method]["responses"].values():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            for part in schema.get("allOf", []):
                used.update(part.get("properties", {}).get("code", {}).get("enum", []))
    assert listed == used


def test_the_document_version_is_the_package_version():
    import configparser

    import sync
    assert document()["info"]["version"] == sync.__version__
    setup = configparser.ConfigParser()
    setup.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "setup.cfg"))
    assert setup["metadata"]["version"] == "attr: sync.__version__"
