"""Property-based run of the API document against the app (schemathesis,
through its WSGI transport): for requests generated from the document, no
answer is a 5xx and every answer conforms to the document (status, content
type, headers, body schema).

The calls are made as user alice with a user token and ``X-Device-Id`` of a
registered device, so the sync operations act for a device. Operations under
the ``/api/sync`` alias are left out (the same resources serve them, which
``tests/test_openapi.py`` checks).
"""

import itertools

import hypothesis
import pytest
import schemathesis
import webtest
from schemathesis import checks as st_checks
from schemathesis.specs.openapi import checks as openapi_checks

from sync import auth
from sync.config import Config
from sync.wsgi import create_app, open_runtime

from .openapi_check import DOCUMENT

EXAMPLES_PER_OPERATION = 10
WORKFLOWS = 25
WORKFLOW_STEPS = 6
# The sync cycle; the device records' own operations are left to the
# per-operation run so that the sequences reach uploads and the feed.
WORKFLOW_OPERATIONS = {
    "registerDevice", "listChanges", "ack", "report", "listConflicts", "resolveConflict",
    "createUpload", "getUpload", "putChunk", "completeUpload", "cancelUpload"}

CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


def open_app(data_dir):
    """A fresh app as served (no fsync), with predictable ids, and the
    headers of alice with a user token and ``X-Device-Id`` of her device."""
    counter = itertools.count(1)
    rt = open_runtime(Config.build(data_dir=data_dir, access_log=False, fsync=False),
                      idgen=lambda: f"{next(counter):024x}")
    app = create_app(rt)
    token = auth.issue_user_token(rt, "alice")
    device = webtest.TestApp(app).post_json(
        "/api/v1/sync/devices", {"name": "Fuzzer"},
        headers={"Authorization": f"Bearer {token}"}).json
    return app, {"Authorization": f"Bearer {token}", "X-Device-Id": device["id"]}


def headers_for(operation, caller):
    return {} if operation.path.startswith("/api/v1/auth/") else dict(caller)


# Loaded from the file, not through the app, so that collection opens
# nothing; each call goes to the test's app through the WSGI transport.
schema = schemathesis.openapi.from_path(DOCUMENT).exclude(path_regex="^/api/sync/")


@pytest.fixture
def served_app(tmp_path):
    """One fresh app per operation, shared by that operation's examples."""
    return open_app(str(tmp_path / "data"))


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                     suppress_health_check=list(hypothesis.HealthCheck),
                     database=None, derandomize=True)
def test_api_conforms_to_its_document(case, served_app):
    app, caller = served_app
    case.call_and_validate(app=app, headers=headers_for(case.operation, caller), checks=CHECKS)


def test_api_workflows_conform_to_its_document(tmp_path):
    """Sequences of calls that follow the document's links (register a device
    then sync as it, open an upload then send a chunk and complete it, page
    through the feed then ack it, ...), with the same checks; each sequence
    on a fresh app."""
    runs = itertools.count()

    workflow_schema = schema.include(
        lambda ctx: ctx.operation.definition.raw.get("operationId") in WORKFLOW_OPERATIONS)

    class Workflow(workflow_schema.as_state_machine()):
        def setup(self):
            self.app, self.caller = open_app(str(tmp_path / f"run{next(runs)}"))
            self.devices = {self.caller["X-Device-Id"]}

        def call(self, case, **kwargs):
            headers = headers_for(case.operation, self.caller)
            linked = (case.headers or {}).get("X-Device-Id")
            if headers and linked in self.devices:
                headers["X-Device-Id"] = linked  # a device registered in this sequence
            response = case.call(app=self.app, headers=headers, **kwargs)
            if case.operation.label == "POST /api/v1/sync/devices" and response.status_code == 200:
                self.devices.add(response.json()["id"])
            return response

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(settings=hypothesis.settings(
        max_examples=WORKFLOWS, stateful_step_count=WORKFLOW_STEPS, deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck), database=None, derandomize=True))
