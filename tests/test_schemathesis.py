"""Property-based run of the API document against the app (schemathesis,
through its WSGI transport): for requests generated from the document, no
answer is a 5xx and every answer conforms to the document (status, content
type, headers, body schema).

The calls are made as user alice with a user token and ``X-Device-Id`` of a
registered device, so the sync operations act for a device. Operations under
the ``/api/sync`` alias are left out (the same resources serve them, which
``tests/test_openapi.py`` checks), as are operations whose resource has no
responder yet.
"""

import hypothesis
import pytest
import schemathesis
from schemathesis import checks as st_checks
from schemathesis.specs.openapi import checks as openapi_checks

from sync import auth
from sync.config import Config
from sync.wsgi import create_app, open_runtime

from .openapi_check import DOCUMENT, served_routes

EXAMPLES_PER_OPERATION = 15

CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def st_app(tmp_path_factory):
    """One app for the whole run, with real time and random ids, as served."""
    config = Config.build(data_dir=str(tmp_path_factory.mktemp("st") / "data"),
                          access_log=False, fsync=False)
    rt = open_runtime(config)
    return rt, create_app(rt)


@pytest.fixture(scope="module")
def caller(st_app):
    """Headers of alice with a user token and one of her devices."""
    rt, app = st_app
    import webtest
    token = auth.issue_user_token(rt, "alice")
    device = webtest.TestApp(app).post_json(
        "/api/v1/sync/devices", {"name": "Fuzzer"},
        headers={"Authorization": f"Bearer {token}"}).json
    return {"Authorization": f"Bearer {token}", "X-Device-Id": device["id"]}


@pytest.fixture(scope="module")
def implemented(st_app):
    return {path: methods for path, (_, methods) in served_routes(st_app[1]).items()}


# Loaded from the file, not through the app, so that collection opens
# nothing; each call goes to the test's app through the WSGI transport.
schema = schemathesis.openapi.from_path(DOCUMENT).exclude(path_regex="^/api/sync/")


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck),
                     database=None, derandomize=True)
def test_api_conforms_to_its_document(case, st_app, caller, implemented):
    operation = case.operation
    if operation.method.lower() not in implemented.get(operation.path, ()):
        pytest.skip(f"{operation.method.upper()} {operation.path} has no responder yet")
    headers = {} if operation.path.startswith("/api/v1/auth/") else dict(caller)
    case.call_and_validate(app=st_app[1], headers=headers, checks=CHECKS)
