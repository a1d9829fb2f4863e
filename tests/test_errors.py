"""The one JSON error shape, for our errors and Falcon's own, and the
catalogue of error codes (``sync.errors``): every code the server can answer
is a constant there."""

import ast
import os
import re

import pytest

from sync import errors

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


# -- the catalogue -------------------------------------------------------------

SYNC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sync")
# The error constructors of sync.errors and the position of their code argument.
CODE_ARGUMENT = {"SyncError": 1, "bad_request": 0, "not_found": 1, "forbidden": 1}


def _server_modules():
    for root, dirs, files in os.walk(SYNC):
        dirs[:] = [d for d in dirs if d not in ("client", "__pycache__")]
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".py") and path != os.path.join(SYNC, "errors.py"):
                yield path


def _code_argument(call):
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in CODE_ARGUMENT:
        return None
    for keyword in call.keywords:
        if keyword.arg == "code":
            return keyword.value
    position = CODE_ARGUMENT[name]
    return call.args[position] if len(call.args) > position else None


def codes_outside_the_catalogue(source, filename="<source>"):
    """``[(line, what)]`` for every error code in ``source`` that is not a
    constant of ``sync.errors``: a string literal or a constant of another
    module given as the code of an error, or as the ``code`` of a dict."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        values = []
        if isinstance(node, ast.Call):
            values.append(_code_argument(node))
        elif isinstance(node, ast.Dict):
            values += [v for k, v in zip(node.keys, node.values)
                       if isinstance(k, ast.Constant) and k.value == "code"]
        for value in values:
            if isinstance(value, ast.Constant):
                found.append((node.lineno, repr(value.value)))
            elif isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
                if value.value.id != "errors" or getattr(errors, value.attr, None) \
                        not in errors.CODES:
                    found.append((node.lineno, f"{value.value.id}.{value.attr}"))
            elif isinstance(value, ast.Name) and value.id.isupper():
                found.append((node.lineno, value.id))
    return found


def test_every_error_code_the_server_raises_is_in_the_catalogue():
    outside = []
    for path in _server_modules():
        with open(path, encoding="utf-8") as f:
            outside += [f"{os.path.relpath(path, SYNC)}:{line}: {what}"
                        for line, what in codes_outside_the_catalogue(f.read(), path)]
    assert not outside, "error codes outside sync/errors.py:\n" + "\n".join(outside)


@pytest.mark.parametrize("source", [
    'errors.SyncError(409, "upload_lost", "gone")',
    'errors.bad_request("made_up", "why")',
    'errors.not_found("why", code="made_up")',
    'errors.SyncError(413, FILE_TOO_LARGE, "big")',
    'errors.SyncError(409, uploads.UPLOAD_BUSY, "busy")',
    'errors.bad_request(errors.NOT_A_CODE, "why")',
    '{"title": "x", "description": "y", "code": "made_up"}',
])
def test_the_catalogue_check_finds_a_code_spelled_elsewhere(source):
    assert codes_outside_the_catalogue(source)


def test_the_catalogue_check_accepts_catalogue_constants():
    assert not codes_outside_the_catalogue(
        'errors.SyncError(409, errors.UPLOAD_BUSY, "busy")\n'
        'errors.forbidden("no", code=errors.FORBIDDEN)\n'
        '{"code": errors.INTERNAL}\n'
        'errors.bad_request(code, "passed through")\n')


def test_every_code_is_unique_and_snake_case():
    names = [n for n in dir(errors) if n.isupper() and isinstance(getattr(errors, n), str)]
    values = [getattr(errors, n) for n in names]
    assert len(values) == len(set(values)) == len(errors.CODES)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", v) for v in values)
    assert set(errors.DEFAULT_CODES.values()) <= errors.CODES
