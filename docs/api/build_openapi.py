"""Builds ``docs/api/openapi.json``, the OpenAPI 3.1 description of the API.

Each operation of the sync API is written once here and emitted under both
prefixes (``/api/v1/sync`` and its alias ``/api/sync``). Run it after
changing the API: ``python docs/api/build_openapi.py``; ``--check`` exits
non-zero when the committed file differs from what this script builds
(``tests/test_openapi.py`` checks the same).
"""

import ast
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "openapi.json")
PACKAGE_INIT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "sync", "__init__.py")


def package_version():
    """``sync.__version__``, read from the package's ``__init__.py`` without
    importing it: the document's version is the version the package installs as."""
    with open(PACKAGE_INIT, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__version__"]:
            return node.value.value
    raise RuntimeError(f"no __version__ in {PACKAGE_INIT}")

PREFIXES = ("/api/v1/sync", "/api/sync")
KIB = 1024
MIB = 1024 * KIB
MAX_JSON_BODY = 2 * MIB
MAX_INT = 2 ** 63 - 1  # integers are stored as SQLite's signed 64-bit integers


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema):
    """``schema`` or null (JSON Schema 2020-12, as OpenAPI 3.1 uses it)."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(required, optional=None, description=None, closed=True):
    """An object schema; response objects are closed (no undocumented members)."""
    properties = dict(required)
    properties.update(optional or {})
    schema = {"type": "object", "required": list(required), "properties": properties}
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


TIMESTAMP = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$",
    "description": "ISO 8601 UTC, e.g. `2026-11-27T04:32:41Z` (fractions of a second allowed).",
    "examples": ["2026-11-27T04:32:41Z"],
}

SCHEMAS = {
    "Error": {
        "type": "object",
        "description": "The one error body. Clients branch on `code`, which is part of "
                       "the contract: `path_invalid`, `cursor_invalid`, `cursor_expired`, "
                       "`limit_invalid`, `body_invalid`, `body_too_large`, "
                       "`device_required`, `chunk_invalid`, `digest_mismatch`, "
                       "`chunks_missing`, `already_resolved`, `quota_exceeded`, "
                       "`insufficient_storage`, and the server's own: `unauthorized`, "
                       "`login_failed`, `forbidden`, `not_found`, `method_not_allowed`, "
                       "`resolution_invalid`, `range_not_satisfiable`, `bad_request`, "
                       "`file_too_large`, `upload_busy`, `upload_completed`, `upload_lost`, "
                       "`rev_invalid`, `rewind_too_old`, `case_clash`, "
                       "`too_many_attempts`, `too_many_uploads`.",
        "required": ["title", "description", "code"],
        "properties": {
            "title": {"type": "string", "description": "The HTTP status in words."},
            "description": {"type": "string", "minLength": 1,
                            "description": "What went wrong, for people."},
            "code": {"type": "string", "minLength": 1,
                     "description": "What went wrong, for programs."},
            "missing": {"type": "array", "items": {"type": "integer", "minimum": 0},
                        "description": "With `chunks_missing`: the indices of the chunks "
                                       "not received yet."},
        },
        "if": {"required": ["code"], "properties": {"code": {"const": "chunks_missing"}}},
        "then": {"required": ["missing"]},
    },
    "Timestamp": TIMESTAMP,
    "Sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$",
               "description": "SHA-256 of the content, 64 lowercase hex digits."},
    "Rev": {"type": "integer", "minimum": 1,
            "description": "A server-wide increasing revision number."},
    "Cursor": {"type": "string", "minLength": 1, "maxLength": 64,
               "description": "An opaque feed position. It carries the database's id, so a "
                              "cursor from another (or a restored) database is refused "
                              "with `cursor_expired`."},
    "LibraryPath": {"type": "string", "minLength": 1, "maxLength": 4096,
                    "description": "A relative POSIX path such as `books/Dune.epub`, "
                                   "normalized to NFC. Rejected (`path_invalid`) when empty, "
                                   "absolute, with an empty, `.` or `..` segment, a backslash "
                                   "or a control character, a line or paragraph separator "
                                   "(U+2028, U+2029) or a bidirectional control (U+202A-U+202E, "
                                   "U+2066-U+2069), a segment over 255 UTF-8 bytes, "
                                   "or over 4096 bytes in all."},
    "Mtime": {"type": "integer",
              "description": "Modification time in seconds since the Unix epoch, as the "
                             "device reported it."},
    "MtimeIn": {"type": "integer", "minimum": -MAX_INT, "maximum": MAX_INT,
                "description": "Modification time in seconds since the Unix epoch."},
    "SizeIn": {"type": "integer", "minimum": 0, "maximum": MAX_INT,
               "description": "Size in bytes."},
    "BaseRev": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_INT},
                          {"type": "null"}],
                "description": "The rev the device last saw at this path; null for a file "
                               "it created."},
    "Health": obj({"status": {"const": "ok"}}),
    "LoginRequest": obj({"username": {"type": "string"}, "password": {"type": "string"}},
                        closed=False),
    "LoginResponse": obj({
        "access_token": {"type": "string", "description": "A user token (JWT, HS256)."},
        "token_type": {"const": "bearer"},
        "expires_in": {"type": "integer", "minimum": 0,
                       "description": "Seconds until the token expires."},
    }),
    "Device": obj({
        "id": {"type": "string"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "platform": nullable({"type": "string", "maxLength": 100}),
        "created_at": ref("Timestamp"),
        "last_seen_at": {**nullable(ref("Timestamp")),
                         "description": "Null until the device first calls the API with its "
                                        "own token or with `X-Device-Id`; updated at most "
                                        "once a minute."},
        "acked_cursor": {**nullable(ref("Cursor")), "description": "Null until the first ack."},
        "pending_changes": {"type": "integer", "minimum": 0,
                            "description": "Library entries (tombstones included) changed "
                                           "after the acked cursor (all of them before the "
                                           "first ack). Kept as changes commit and as the "
                                           "device acks: reading it costs the same at any "
                                           "library size."},
        "app_password": {"type": "boolean",
                         "description": "Whether the device has a WebDAV app password "
                                        "(`POST /devices/{id}/app-password`)."},
    }),
    "DeviceList": obj({"devices": {"type": "array", "items": ref("Device")}}),
    "DeviceCreate": obj({
        "name": {"type": "string", "minLength": 1, "maxLength": 100,
                 "description": "1 to 100 characters, no control characters."},
    }, {
        "platform": nullable({"type": "string", "maxLength": 100}),
    }, closed=False),
    "DeviceUpdate": obj({}, {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "platform": nullable({"type": "string", "maxLength": 100}),
    }, description="Only the members given change.", closed=False),
    "DeviceToken": obj({"token": {"type": "string",
                                  "description": "The device token (JWT); the old one dies."}}),
    "AppPassword": obj({"app_password": {
        "type": "string", "pattern": "^[a-z0-9]{5}(-[a-z0-9]{5}){4}$",
        "examples": ["k3x9a-7mq2p-zt4hb-w8c1n-e5r6d"],
        "description": "The device's WebDAV password, shown only here: five groups of five "
                       "random lowercase letters and digits. A WebDAV client logs in at "
                       "`/dav/files/{user}/` with HTTP Basic, the user name and this password "
                       "(the dashes, spaces and case do not matter). Only a hash is stored."}}),
    "Change": obj({
        "path": ref("LibraryPath"),
        "op": {"enum": ["put", "delete"]},
        "rev": ref("Rev"),
        "size": nullable({"type": "integer", "minimum": 0}),
        "sha256": nullable(ref("Sha256")),
        "mtime": {**nullable(ref("Mtime")), "description": "Null on a delete."},
        "device_id": {**nullable({"type": "string"}),
                      "description": "The device that made the change."},
    }, {
        "moved_from": {**ref("LibraryPath"),
                       "description": "On the put half of a move: the old path."},
    }),
    "ChangesPage": obj({
        "changes": {"type": "array", "items": ref("Change")},
        "cursor": ref("Cursor"),
        "has_more": {"type": "boolean"},
    }),
    "AckRequest": obj({"cursor": ref("Cursor")}, closed=False),
    "AckResult": obj({
        "device_id": {"type": "string"},
        "acked_cursor": ref("Cursor"),
        "acked_at": ref("Timestamp"),
    }),
    "ReportPut": obj({
        "op": {"const": "put"},
        "path": ref("LibraryPath"),
        "sha256": ref("Sha256"),
        "size": ref("SizeIn"),
        "mtime": ref("MtimeIn"),
        "base_rev": ref("BaseRev"),
    }, closed=False),
    "ReportDelete": obj({
        "op": {"const": "delete"},
        "path": ref("LibraryPath"),
        "base_rev": ref("BaseRev"),
    }, closed=False),
    "ReportMove": obj({
        "op": {"const": "move"},
        "path": ref("LibraryPath"),
        "to": ref("LibraryPath"),
        "base_rev": ref("BaseRev"),
    }, closed=False),
    "ReportItem": {"oneOf": [ref("ReportPut"), ref("ReportDelete"), ref("ReportMove")],
                   "discriminator": {"propertyName": "op", "mapping": {
                       "put": "#/components/schemas/ReportPut",
                       "delete": "#/components/schemas/ReportDelete",
                       "move": "#/components/schemas/ReportMove"}}},
    "ReportRequest": obj({
        "changes": {"type": "array", "minItems": 1, "maxItems": 1000,
                    "items": ref("ReportItem")},
    }, closed=False),
    "ReportResult": obj({
        "path": {**nullable({"type": "string"}),
                 "description": "The item's path (normalized when valid); null for a "
                                "rejected item without a string path."},
        "status": {"enum": ["applied", "unchanged", "upload_required", "conflict", "rejected"]},
    }, {
        "rev": nullable(ref("Rev")),
        "conflict_id": {"type": "string"},
        "error": {"type": "string", "description": "With `rejected`: why."},
    }),
    "ReportResponse": obj({"results": {"type": "array", "items": ref("ReportResult")}}),
    "ConflictServer": obj({
        "rev": nullable(ref("Rev")),
        "op": nullable({"enum": ["put", "delete"]}),
        "sha256": nullable(ref("Sha256")),
        "size": nullable({"type": "integer", "minimum": 0}),
        "mtime": nullable(ref("Mtime")),
        "device_id": nullable({"type": "string"}),
    }, description="The library's head at the path when the conflict was recorded."),
    "ConflictClient": obj({
        "op": {"enum": ["put", "delete", "move"]},
        "sha256": nullable(ref("Sha256")),
        "size": nullable({"type": "integer", "minimum": 0}),
        "mtime": nullable(ref("Mtime")),
        "device_id": nullable({"type": "string"}),
    }, {
        "to": {**ref("LibraryPath"), "description": "For a move: the target path."},
    }, description="The device's version that could not be applied."),
    "Conflict": obj({
        "id": {"type": "string"},
        "path": ref("LibraryPath"),
        "kind": {"enum": ["modify_modify", "delete_modify", "move", "case_clash"]},
        "created_at": ref("Timestamp"),
        "server": ref("ConflictServer"),
        "client": ref("ConflictClient"),
    }, {
        "resolved_at": ref("Timestamp"),
        "resolution": {"enum": ["keep_server", "keep_client", "keep_both"]},
    }),
    "ConflictList": obj({
        "conflicts": {"type": "array", "items": ref("Conflict"), "maxItems": 1000},
    }, {
        "cursor": {"type": "string", "minLength": 1, "maxLength": 65,
                   "description": "Pass it back as `cursor` for the next page. Given when "
                                  "`cursor` or `limit` was sent, or when more than a page "
                                  "(1000) is left."},
        "has_more": {"type": "boolean",
                     "description": "More unresolved conflicts follow this page (given with "
                                    "`cursor`)."},
    }),
    "ResolveRequest": obj({
        "resolution": {"enum": ["keep_server", "keep_client", "keep_both"]},
    }, closed=False),
    "ResolveResponse": obj({
        "conflict": ref("Conflict"),
        "results": {"type": "array", "items": ref("Change"),
                    "description": "The changes the resolution made to the library."},
    }),
    "UploadCreate": obj({
        "path": ref("LibraryPath"),
        "size": ref("SizeIn"),
        "sha256": ref("Sha256"),
        "base_rev": ref("BaseRev"),
    }, {
        "mtime": nullable(ref("MtimeIn")),
        "chunk_size": {"type": "integer", "minimum": 256 * KIB, "maximum": 64 * MIB,
                       "default": 8 * MIB,
                       "description": "256 KiB to 64 MiB (and at most the server's "
                                      "`max_chunk_size`)."},
    }, closed=False),
    "UploadSession": obj({
        "id": {"type": "string"},
        "path": ref("LibraryPath"),
        "size": {"type": "integer", "minimum": 0},
        "chunk_size": {"type": "integer", "minimum": 256 * KIB, "maximum": 64 * MIB},
        "chunk_count": {"type": "integer", "minimum": 0,
                        "description": "ceil(size / chunk_size), 0 for an empty file."},
        "received": {"type": "array", "items": {"type": "integer", "minimum": 0},
                     "description": "Indices of the chunks received, ascending."},
        "bytes_received": {"type": "integer", "minimum": 0},
        "sha256": ref("Sha256"),
        "base_rev": {**nullable({"type": "integer", "minimum": 0}),
                     "description": "As given when the session was opened."},
        "mtime": {**nullable(ref("Mtime")),
                  "description": "As given; null: the completion time is used."},
        "device_id": {"type": "string", "description": "The device that opened the session."},
        "expires_at": {**ref("Timestamp"),
                       "description": "When the session is removed unless it is used again "
                                      "(each received chunk renews it)."},
        "state": {"enum": ["open", "completed"]},
    }),
    "ChunkReceipt": obj({
        "index": {"type": "integer", "minimum": 0},
        "received": {"type": "integer", "minimum": 0,
                     "description": "How many chunks the session has received."},
        "bytes_received": {"type": "integer", "minimum": 0},
    }),
    "CompleteResult": obj({
        "status": {"enum": ["applied", "unchanged", "conflict"]},
        "rev": {**nullable(ref("Rev")),
                "description": "The applied change's rev; the head's for `unchanged` and "
                               "`conflict` (null when the path has no head)."},
    }, {
        "conflict_id": {"type": "string"},
    }),
}
SCHEMAS["DeviceWithToken"] = obj(
    {**SCHEMAS["Device"]["properties"],
     "token": {"type": "string", "description": "The device token (JWT), shown only here."}},
    description="A new device and its device token.")

# Waiting for changes (POST /changes/wait).
WAIT_MAX_TIMEOUT_S = 55
SCHEMAS["WaitRequest"] = obj({
    "cursor": {**ref("Cursor"), "description": "A cursor from the feed (required)."},
}, {
    "timeout": {"type": "integer", "minimum": 1, "maximum": WAIT_MAX_TIMEOUT_S, "default": 30,
                "description": "Seconds to wait at most (1 to 55, default 30)."},
}, closed=False)
SCHEMAS["WaitResult"] = obj({
    "changes": {"type": "boolean",
                "description": "True: the library has changes after the cursor; read them "
                               "with `GET /changes`. False: none came within the timeout."},
}, {
    "backoff": {"type": "integer", "minimum": 1,
                "description": "Seconds the client waits before its next wait: present "
                               "when `--max-waiters` requests already wait."},
})

# History, trash and rewind (SPEC §8).
SCHEMAS["Revision"] = obj({
    "rev": ref("Rev"),
    "op": {"enum": ["put", "delete"]},
    "sha256": nullable(ref("Sha256")),
    "size": nullable({"type": "integer", "minimum": 0}),
    "mtime": nullable(ref("Mtime")),
    "device_id": {**nullable({"type": "string"}),
                  "description": "The device that made the change; null when a user token "
                                 "without `X-Device-Id` did."},
    "device_name": {**nullable({"type": "string"}),
                    "description": "Null when that device is gone or no device made it."},
    "changed_at": ref("Timestamp"),
}, {
    "moved_from": {**ref("LibraryPath"), "description": "The put half of a move."},
    "moved_to": {**ref("LibraryPath"), "description": "The delete half of a move."},
}, description="One kept revision of a path. `sha256`, `size` and `mtime` are null on a "
               "delete.")
SCHEMAS["HistoryPage"] = obj({
    "path": ref("LibraryPath"),
    "revisions": {"type": "array", "items": ref("Revision"), "description": "Newest first."},
    "cursor": {**nullable(ref("Cursor")),
               "description": "Pass it back for the next page; null on the last page."},
    "has_more": {"type": "boolean"},
})
SCHEMAS["TrashItem"] = obj({
    "path": ref("LibraryPath"),
    "deleted_rev": ref("Rev"),
    "deleted_at": ref("Timestamp"),
    "device_id": {**nullable({"type": "string"}), "description": "Who deleted it."},
    "device_name": nullable({"type": "string"}),
    "rev": {**ref("Rev"), "description": "The newest kept put: what a restore brings back."},
    "sha256": ref("Sha256"),
    "size": {"type": "integer", "minimum": 0},
    "mtime": nullable(ref("Mtime")),
})
SCHEMAS["TrashPage"] = obj({
    "entries": {"type": "array", "items": ref("TrashItem"),
                "description": "Most recently deleted first."},
    "cursor": {**nullable(ref("Cursor")),
               "description": "Pass it back for the next page; null on the last page."},
    "has_more": {"type": "boolean"},
})
SCHEMAS["RestoreRequest"] = obj({
    "path": ref("LibraryPath"),
    "rev": {**ref("Rev"), "description": "A kept revision of that path (see history)."},
}, closed=False)
SCHEMAS["RestoreResult"] = obj({
    "path": ref("LibraryPath"),
    "status": {"enum": ["applied", "unchanged"]},
}, {
    "rev": {**ref("Rev"), "description": "The head's rev; absent when the path has no live "
                                         "head (a restored delete)."},
})
SCHEMAS["RewindRequest"] = obj({}, {
    "rev": {"type": "integer", "minimum": 0, "maximum": MAX_INT,
            "description": "The point: after every revision up to this one."},
    "at": {"type": "string",
           "description": "The point: an ISO 8601 time (UTC when it names no offset); "
                          "revisions made at or before it."},
    "prefix": {"type": "string", "description": "Only paths under this folder."},
    "device_id": {"type": "string",
                  "description": "Only paths this device changed after the point (a deleted "
                                 "device too)."},
    "dry_run": {"type": "boolean", "default": False},
}, description="Exactly one of `rev` and `at`.", closed=False)
SCHEMAS["RewindChange"] = obj({
    "path": ref("LibraryPath"),
    "op": {"enum": ["put", "delete"]},
    "from_rev": {**nullable(ref("Rev")),
                 "description": "The revision whose state comes back; null when the path "
                                "did not exist at the point."},
}, {
    "rev": {**ref("Rev"), "description": "The new revision (absent on a dry run)."},
})
SCHEMAS["RewindResult"] = obj({
    "dry_run": {"type": "boolean"},
    "count": {"type": "integer", "minimum": 0,
              "description": "How many paths changed (or would)."},
    "changes": {"type": "array", "items": ref("RewindChange"), "maxItems": 1000,
                "description": "The first 1000 changes, by path."},
})

# ---------------------------------------------------------------- responses


def json_content(schema):
    return {"application/json": {"schema": schema}}


def error(description, codes, headers=None):
    """An error answer whose ``code`` is one of ``codes``."""
    text = description + " Codes: " + ", ".join(f"`{c}`" for c in codes) + "."
    schema = {"allOf": [ref("Error"), {"properties": {"code": {"enum": list(codes)}}}]}
    response = {"description": text, "content": json_content(schema)}
    if headers:
        response["headers"] = headers
    return response


WWW_AUTHENTICATE = {"WWW-Authenticate": {
    "description": "`Bearer`.", "required": True,
    "schema": {"type": "string", "pattern": "^Bearer"}}}

UNAUTHORIZED = error("No token, or a malformed, expired, badly signed or revoked one.",
                     ["unauthorized"], WWW_AUTHENTICATE)
TOO_LARGE = error(f"The JSON body is over {MAX_JSON_BODY} bytes.", ["body_too_large"])

# -- limits that keep one client from taking the server from the others --------
RETRY_AFTER = {"Retry-After": {
    "description": "Seconds until the name or the address may try again.", "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
TOO_MANY_ATTEMPTS = error(
    "10 failed logins for this user name, or 50 from this client address, within 10 "
    "minutes: refused without checking the password until the window has passed (see "
    "`Retry-After`).", ["too_many_attempts"], RETRY_AFTER)
TOO_MANY_UPLOADS = error(
    "The user has `--max-open-uploads` (default 100) upload sessions open already: "
    "complete or cancel one first.", ["too_many_uploads"])


def ok(schema, description="OK.", links=None):
    response = {"description": description, "content": json_content(ref(schema))}
    if links:
        response["links"] = links
    return response


def link(operation_id, description, parameters=None, body=None):
    """An OpenAPI link: how a value of this answer feeds another operation."""
    result = {"operationId": operation_id, "description": description}
    if parameters:
        result["parameters"] = parameters
    if body is not None:
        result["requestBody"] = body
    return result


def device_links():
    id_ = {"device_id": "$response.body#/id"}
    acting = {"header.X-Device-Id": "$response.body#/id"}
    return {"GetDevice": link("getDevice", "The new device.", id_),
            "UpdateDevice": link("updateDevice", "Rename it.", id_),
            "RegenerateToken": link("regenerateDeviceToken", "Replace its token.", id_),
            "DeleteDevice": link("deleteDevice", "Delete it.", id_),
            "ListChanges": link("listChanges", "Sync as it (with a user token).", acting),
            "Report": link("report", "Report its changes (with a user token).", acting),
            "CreateUpload": link("createUpload", "Upload as it (with a user token).", acting)}


def upload_links():
    id_ = {"upload_id": "$response.body#/id"}
    return {"GetUpload": link("getUpload", "The session's state.", id_),
            "PutChunk": link("putChunk", "Send a chunk.", id_),
            "CompleteUpload": link("completeUpload", "Complete it.", id_),
            "CancelUpload": link("cancelUpload", "Cancel it.", id_)}


NO_CONTENT = {"description": "Done; no body."}

# ---------------------------------------------------------------- parameters

X_DEVICE_ID = {
    "name": "X-Device-Id", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1},
    "description": "With a user token: the device this call acts for. With a device token "
                   "it may be left out (or must name the token's device).",
}


def path_param(name, description, schema=None):
    return {"name": name, "in": "path", "required": True,
            "schema": schema or {"type": "string", "minLength": 1}, "description": description}


DEVICE_ID = path_param("device_id", "A device id.")
CONFLICT_ID = path_param("conflict_id", "A conflict id.")
UPLOAD_ID = path_param("upload_id", "An upload session id.")
CHUNK_INDEX = path_param("index", "The chunk's index, from 0.", {"type": "integer", "minimum": 0})
LIBRARY_PATH = path_param(
    "path", "The library path; its `/` separators are sent as they are (the rest of the "
            "URL after `/download/`).", ref("LibraryPath"))

DEVICE_FORBIDDEN = error("`X-Device-Id` names a device that is unknown or another user's, or "
                         "a device token is sent with another device's id.", ["forbidden"])

# ---------------------------------------------------------------- operations


def op(op_id, summary, responses, *, params=(), body=None, auth=True, tags=(),
       description=None):
    operation = {"operationId": op_id, "summary": summary, "tags": list(tags)}
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = body
        responses = {**responses, "400": _with_code(
            responses["400"], "bad_request", "A malformed `Content-Length` is `bad_request`.")}
    if auth:
        responses = {**responses, "401": UNAUTHORIZED}
    else:
        operation["security"] = []
    operation["responses"] = {code: responses[code] for code in sorted(responses)}
    return operation


def _with_code(response, code, sentence):
    """A copy of an error ``response`` that also allows ``code``."""
    response = json.loads(json.dumps(response))
    schema = response["content"]["application/json"]["schema"]
    schema["allOf"][1]["properties"]["code"]["enum"].append(code)
    response["description"] += " " + sentence
    return response


def json_body(schema):
    return {"required": True, "content": json_content(ref(schema))}


def sync_operations():
    """{template: {method: operation}} for the routes under each sync prefix."""
    device_forbidden_own = error("Another user's device, or a device token acting on another "
                                 "device or on devices it may not manage.", ["forbidden"])
    download_headers = {
        "Content-Length": {"schema": {"type": "integer"}, "required": True},
        "ETag": {"schema": {"type": "string"}, "description": "The quoted sha256.",
                 "required": True},
        "Repr-Digest": {"schema": {"type": "string"},
                        "description": "`sha-256=:<base64>:` (RFC 9530) of the whole content."},
        "Last-Modified": {"schema": {"type": "string"}},
        "Accept-Ranges": {"schema": {"const": "bytes"}},
    }
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
              "*/*": {"schema": {"type": "string", "format": "binary"}}}
    download_params = [
        LIBRARY_PATH,
        {"name": "rev", "in": "query", "required": False, "schema": {"type": "integer"},
         "description": "A kept put revision of the path (see `GET /history/{path}`): its "
                        "content instead of the head's, with the same headers (ETag: its "
                        "sha256)."},
        {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "One range: `bytes=a-b`, `bytes=a-` or `bytes=-n`."},
        {"name": "If-Range", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "An ETag or HTTP date: the Range is honoured only if it still "
                        "matches; otherwise the whole content is sent."},
        {"name": "If-None-Match", "in": "header", "required": False,
         "schema": {"type": "string"},
         "description": "ETags (or `*`): 304 when one matches the current content."},
    ]

    def download_responses(with_body):
        def content(response):
            if with_body:
                response["content"] = binary
            return response
        return {
            "200": content({"description": "The head content of the path. `Content-Type` is "
                                           "guessed from the name "
                                           "(`application/octet-stream` when unknown).",
                            "headers": download_headers}),
            "206": content({"description": "The requested range.",
                            "headers": {**download_headers, "Content-Range": {
                                "schema": {"type": "string"}, "required": True,
                                "description": "`bytes a-b/size`."}}}),
            "304": {"description": "`If-None-Match` matched: not modified.",
                    "headers": {"ETag": download_headers["ETag"]}},
            "400": error("The path is invalid, or `rev` is not an integer.",
                         ["path_invalid", "rev_invalid"]),
            "404": error("No such path, or it is deleted; with `rev`: not a kept put "
                         "revision of that path.", ["not_found"]),
            "416": {**error("The range cannot be satisfied.", ["range_not_satisfiable"]),
                    "headers": {"Content-Range": {"schema": {"type": "string"},
                                                  "required": True,
                                                  "description": "`bytes */size`."}}},
        } if with_body else {
            "200": {"description": "As GET, without a body.", "headers": download_headers},
            "206": {"description": "As GET, without a body.", "headers": download_headers},
            "304": {"description": "As GET."},
            "400": {"description": "As GET, without a body."},
            "404": {"description": "As GET, without a body."},
            "416": {"description": "As GET, without a body."},
        }

    upload_missing = error("Unknown, cancelled, expired, or another user's session.",
                           ["not_found"])
    chunk_busy = error("The session is already complete, is being completed or cancelled, "
                       "or this chunk index is being received by another request.",
                       ["upload_completed", "upload_busy"])
    return {
        "/devices": {
            "get": op("listDevices", "List the user's devices.", {"200": ok("DeviceList")},
                      tags=["devices"]),
            "post": op("registerDevice", "Register a device; its token is shown once.", {
                "200": ok("DeviceWithToken", links=device_links()),
                "400": error("Bad body.", ["body_invalid"]),
                "403": error("A device token may not register devices.", ["forbidden"]),
                "413": TOO_LARGE,
            }, body=json_body("DeviceCreate"), tags=["devices"]),
        },
        "/devices/{device_id}": {
            "get": op("getDevice", "Read a device.", {
                "200": ok("Device"),
                "403": device_forbidden_own,
                "404": error("No such device.", ["not_found"]),
            }, params=[DEVICE_ID], tags=["devices"]),
            "put": op("updateDevice", "Rename a device or change its platform.", {
                "200": ok("Device"),
                "400": error("Bad body.", ["body_invalid"]),
                "403": device_forbidden_own,
                "404": error("No such device.", ["not_found"]),
                "413": TOO_LARGE,
            }, params=[DEVICE_ID], body=json_body("DeviceUpdate"), tags=["devices"]),
            "delete": op("deleteDevice", "Delete a device: its tokens die and its open "
                                         "uploads are cancelled.", {
                "204": NO_CONTENT,
                "403": device_forbidden_own,
                "404": error("No such device.", ["not_found"]),
            }, params=[DEVICE_ID], tags=["devices"]),
        },
        "/devices/{device_id}/token": {
            "post": op("regenerateDeviceToken", "A new device token; the old one dies.", {
                "200": ok("DeviceToken"),
                "403": device_forbidden_own,
                "404": error("No such device.", ["not_found"]),
            }, params=[DEVICE_ID], tags=["devices"]),
        },
        "/devices/{device_id}/app-password": {
            "post": op("createAppPassword", "A new WebDAV app password for the device; it "
                                            "replaces the old one.", {
                "200": ok("AppPassword"),
                "403": error("Another user's device, or a device token (app passwords are "
                             "managed with a user token only).", ["forbidden"]),
                "404": error("No such device.", ["not_found"]),
            }, params=[DEVICE_ID], tags=["devices"],
                description="The device's WebDAV requests (HTTP Basic with the user name and "
                            "this password) act for it: their changes carry its id. Deleting "
                            "the device revokes the password too."),
            "delete": op("deleteAppPassword", "Revoke the device's app password (204 also "
                                              "when it has none).", {
                "204": NO_CONTENT,
                "403": error("Another user's device, or a device token.", ["forbidden"]),
                "404": error("No such device.", ["not_found"]),
            }, params=[DEVICE_ID], tags=["devices"]),
        },
        "/changes": {
            "get": op("listChanges", "The changes feed: entries in the order they last "
                                     "changed, each once, at its latest revision.", {
                "200": ok("ChangesPage", links={
                    "NextPage": link("listChanges", "The next page.",
                                     {"cursor": "$response.body#/cursor"}),
                    "Ack": link("ack", "Acknowledge the page.",
                                body={"cursor": "$response.body#/cursor"})}),
                "400": error("A garbled cursor, a cursor older than the tombstone horizon "
                             "or from another database (list again from the beginning), "
                             "a bad limit, or no device.",
                             ["cursor_invalid", "cursor_expired", "limit_invalid",
                              "device_required"]),
                "403": DEVICE_FORBIDDEN,
            }, params=[
                {"name": "cursor", "in": "query", "required": False,
                 "schema": {"type": "string", "maxLength": 64},
                 "description": "Where the previous page ended (a `cursor` of this feed); "
                                "absent or empty: from the beginning."},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                 "description": "Most changes on a page (1 to 1000, default 100)."},
                X_DEVICE_ID,
            ], tags=["sync"]),
        },
        "/ack": {
            "post": op("ack", "The device has applied everything up to a cursor.", {
                "200": ok("AckResult"),
                "400": error("A garbled cursor, one the server never issued, or no device.",
                             ["cursor_invalid", "cursor_expired", "body_invalid",
                              "device_required"]),
                "403": DEVICE_FORBIDDEN,
                "404": error("The device was deleted while the request ran.", ["not_found"]),
                "413": TOO_LARGE,
            }, params=[X_DEVICE_ID], body=json_body("AckRequest"), tags=["sync"]),
        },
        "/report": {
            "post": op("report", "Report the device's local changes (1 to 1000).", {
                "200": ok("ReportResponse", "One result per item, in order.", links={
                    "ResolveConflict": link(
                        "resolveConflict", "Settle the conflict of the first result.",
                        {"conflict_id": "$response.body#/results/0/conflict_id"})}),
                "400": error("A malformed body: nothing is applied.",
                             ["body_invalid", "device_required"]),
                "403": DEVICE_FORBIDDEN,
                "413": TOO_LARGE,
            }, params=[X_DEVICE_ID], body=json_body("ReportRequest"), tags=["sync"]),
        },
        "/conflicts": {
            "get": op("listConflicts", "The unresolved conflicts, oldest first, a page at a "
                                       "time (1000 without `limit`).", {
                "200": ok("ConflictList", links={
                    "ResolveConflict": link("resolveConflict", "Settle the first conflict.",
                                            {"conflict_id": "$response.body#/conflicts/0/id"})}),
                "400": error("A garbled cursor, or a limit outside 1 to 1000.",
                             ["cursor_invalid", "limit_invalid"]),
            }, params=[
                {"name": "cursor", "in": "query", "required": False,
                 "schema": {"type": "string", "maxLength": 65},
                 "description": "The `cursor` of the previous page; absent: from the oldest."},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000},
                 "description": "Most conflicts on a page (1 to 1000, default 1000)."},
            ], tags=["conflicts"]),
        },
        "/conflicts/{conflict_id}/resolve": {
            "post": op("resolveConflict", "Settle a conflict.", {
                "200": ok("ResolveResponse"),
                "400": error("Already resolved, an unknown resolution, or a bad body.",
                             ["already_resolved", "resolution_invalid", "body_invalid"]),
                "404": error("No such conflict, or another user's.", ["not_found"]),
                "413": TOO_LARGE,
                "507": error("With `--quota`: the user's content is over the quota and this "
                             "resolution keeps the client's version without freeing space; "
                             "the conflict stays open (`keep_server` always works).",
                             ["quota_exceeded"]),
            }, params=[CONFLICT_ID], body=json_body("ResolveRequest"), tags=["conflicts"]),
        },
        "/upload": {
            "post": op("createUpload", "Open a resumable upload session.", {
                "200": ok("UploadSession", links=upload_links()),
                "400": error("Bad body or path, or no device; or content the library "
                             "already holds under this sha256 at another size than the "
                             "declared one (no session is opened).",
                             ["body_invalid", "path_invalid", "device_required",
                              "digest_mismatch"]),
                "403": DEVICE_FORBIDDEN,
                "413": error("The JSON body is too large, or the file is over the server's "
                             "largest file size.", ["body_too_large", "file_too_large"]),
                "429": TOO_MANY_UPLOADS,
                "507": error("The file would take the user over their quota, or its "
                             "reservation would leave less than `--min-free` (default 1 GiB) "
                             "free on the server's disk, or the disk is full (nothing is "
                             "kept).", ["quota_exceeded", "insufficient_storage"]),
            }, params=[X_DEVICE_ID], body=json_body("UploadCreate"), tags=["uploads"]),
        },
        "/upload/{upload_id}": {
            "get": op("getUpload", "An upload session and the chunks it has received.", {
                "200": ok("UploadSession"),
                "400": error("No device.", ["device_required"]),
                "403": DEVICE_FORBIDDEN,
                "404": upload_missing,
            }, params=[UPLOAD_ID, X_DEVICE_ID], tags=["uploads"]),
            "delete": op("cancelUpload", "Cancel an upload session; its spool file goes.", {
                "204": NO_CONTENT,
                "400": error("No device.", ["device_required"]),
                "403": DEVICE_FORBIDDEN,
                "404": upload_missing,
            }, params=[UPLOAD_ID, X_DEVICE_ID], tags=["uploads"]),
        },
        "/upload/{upload_id}/chunks/{index}": {
            "put": op("putChunk", "Send one chunk (any order, re-sending replaces it).", {
                "200": ok("ChunkReceipt", "The chunk is durable and counted."),
                "400": error("Wrong length, index out of range, or a Content-Digest that "
                             "does not match: the chunk is not counted.",
                             ["chunk_invalid", "device_required"]),
                "403": DEVICE_FORBIDDEN,
                "404": upload_missing,
                "409": chunk_busy,
            }, params=[
                UPLOAD_ID, CHUNK_INDEX, X_DEVICE_ID,
                {"name": "Content-Digest", "in": "header", "required": False,
                 "schema": {"type": "string"},
                 "description": "`sha-256=:<base64>:` (RFC 9530) of the chunk's bytes."},
            ], body={"required": True, "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}},
                "description": "Exactly `chunk_size` bytes, except the last chunk."},
                tags=["uploads"]),
        },
        "/upload/{upload_id}/complete": {
            "post": op("completeUpload", "Check the whole file and apply it to the library "
                                         "(safe to retry).", {
                "200": ok("CompleteResult"),
                "400": error("Chunks missing (see `missing`), or size or SHA-256 do not "
                             "match (the session stays open).",
                             ["chunks_missing", "digest_mismatch", "device_required"]),
                "403": DEVICE_FORBIDDEN,
                "404": upload_missing,
                "409": error("The received bytes are gone from the server (cancel and upload "
                             "again).", ["upload_lost"]),
            }, params=[UPLOAD_ID, X_DEVICE_ID], tags=["uploads"]),
        },
        "/download/{path}": {
            "get": op("download", "The head content of a path (ranges and conditional "
                                  "requests supported).", download_responses(True),
                      params=download_params, tags=["download"]),
            "head": op("downloadHead", "As GET, headers only.", download_responses(False),
                       params=download_params, tags=["download"]),
        },
    }


def wait_operations():
    """{template: {method: operation}} of waiting for changes (under each sync prefix)."""
    return {
        "/changes/wait": {
            "post": op("waitForChanges", "Wait until the library changes after a cursor.", {
                "200": ok("WaitResult", links={
                    "ListChanges": link("listChanges", "Read the changes (after "
                                                       "`changes: true`).")}),
                "400": error("No cursor, a bad timeout, a garbled cursor, a cursor older "
                             "than the tombstone horizon or from another database, or no "
                             "device.",
                             ["body_invalid", "cursor_invalid", "cursor_expired",
                              "device_required"]),
                "403": DEVICE_FORBIDDEN,
                "413": TOO_LARGE,
            }, params=[X_DEVICE_ID], body=json_body("WaitRequest"), tags=["sync"],
                description=WAIT_DESCRIPTION),
        },
    }


WAIT_DESCRIPTION = """\
Acts for a device, like the feed. Answers `{"changes": true}` at once when the
user's library already has a change after `cursor`, else as soon as one
commits (within a second), else `{"changes": false}` once `timeout` seconds
have passed. Waiting writes nothing (a device's `last_seen_at` moves at most
once a minute, as on every call). Each waiting request holds one of
`--max-waiters` places (default 16), served by threads of their own beside
`--threads`; past that many the answer comes at once,
`{"changes": false, "backoff": N}`, and the client waits N seconds before
its next wait. A request whose client closed its connection leaves its
place within about a second."""


LIMIT_PARAM = {"name": "limit", "in": "query", "required": False,
               "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
               "description": "Page size, 1 to 1000 (default 100)."}
CURSOR_PARAM = {"name": "cursor", "in": "query", "required": False, "schema": ref("Cursor"),
                "description": "The `cursor` of the previous page."}
CHANGING_DEVICE = {**X_DEVICE_ID,
                   "description": "With a user token: the device the change is made as "
                                  "(optional; without it the change carries "
                                  "`device_id: null`)."}


def history_operations():
    """{template: {method: operation}} of history, trash and rewind (under each prefix)."""
    page_errors = ["limit_invalid", "cursor_invalid"]
    return {
        "/history/{path}": {
            "get": op("getHistory", "The kept revisions of a path, newest first.", {
                "200": ok("HistoryPage", links={
                    "DownloadRevision": link("download", "The content of the newest "
                                                         "revision.")}),
                "400": error("The path is invalid, or a bad limit or cursor.",
                             ["path_invalid"] + page_errors),
                "404": error("The path has no kept revision (or is another user's).",
                             ["not_found"]),
            }, params=[{**LIBRARY_PATH, "description": "The library path (the rest of the "
                                                       "URL after `/history/`)."},
                       LIMIT_PARAM, CURSOR_PARAM], tags=["history"],
                description=HISTORY_DESCRIPTION),
        },
        "/trash": {
            "get": op("listTrash", "Deleted paths whose content is still kept.", {
                "200": ok("TrashPage", links={
                    "Restore": link("restore", "Bring the first one back with its `path` "
                                               "and `rev`.")}),
                "400": error("A bad prefix, limit or cursor.", ["path_invalid"] + page_errors),
            }, params=[{"name": "prefix", "in": "query", "required": False,
                        "schema": {"type": "string"},
                        "description": "Only paths under this folder (with or without its "
                                       "trailing `/`)."}, LIMIT_PARAM, CURSOR_PARAM],
                tags=["history"]),
        },
        "/restore": {
            "post": op("restore", "Make a kept revision of a path its head again.", {
                "200": ok("RestoreResult"),
                "400": error("A missing or mistyped field, or an invalid path.",
                             ["body_invalid", "path_invalid"]),
                "403": DEVICE_FORBIDDEN,
                "404": error("That revision is not a kept revision of that path.",
                             ["not_found"]),
                "409": error("The path differs only by case from another live path; nothing "
                             "changed.", ["case_clash"]),
                "413": TOO_LARGE,
                "507": HISTORY_QUOTA,
            }, params=[CHANGING_DEVICE], body=json_body("RestoreRequest"), tags=["history"],
                description=RESTORE_DESCRIPTION),
        },
        "/rewind": {
            "post": op("rewind", "Put paths back as they were at a point.", {
                "200": ok("RewindResult"),
                "400": error("Not exactly one of `rev` and `at`, a mistyped field, an invalid "
                             "prefix, or a point more than `--history-days` ago.",
                             ["body_invalid", "path_invalid", "rewind_too_old"]),
                "403": DEVICE_FORBIDDEN,
                "413": TOO_LARGE,
                "507": HISTORY_QUOTA,
            }, params=[CHANGING_DEVICE], body=json_body("RewindRequest"), tags=["history"],
                description=REWIND_DESCRIPTION),
        },
    }


# Versions and trash do not count against --quota; what a restore or rewind
# brings back to the library does.
HISTORY_QUOTA = error(
    "With `--quota`: the content brought back would take the user over the quota (a "
    "restore or rewind that frees space is always allowed), or the server's disk is full. "
    "Nothing changed.", ["quota_exceeded", "insufficient_storage"])


HISTORY_DESCRIPTION = """\
The server keeps every revision for `--history-days` (default 30): all of
them for 24 hours, then the newest of each UTC hour to 7 days, then the
newest of each UTC day. A revision's age counts from when a newer one
replaced it (from its own time for a deletion nothing replaced), so the
version a device overwrote today is kept for the whole period however old
it was. The head of a live path is always kept. Download a put revision
with `GET /download/{path}?rev=R`."""

RESTORE_DESCRIPTION = """\
A user token or any device. The revision comes back as a new revision (a put
of its content, or a delete) that reaches every device through the feed; the
head it replaces stays in the history. `unchanged` when the head already has
that content (or the path is already deleted). An open conflict on the path
stays open. Restoring from the trash is this call with the trash item's
`rev`."""

REWIND_DESCRIPTION = """\
Every path under `prefix` (default: the whole library) with a revision after
the point (with `device_id`: one that device made) goes back to its state at
the point: the content it had (a new put), or deleted when it did not exist
or was deleted (a new delete). Paths already in that state are left alone
and not counted. Beyond 24 hours the state at a point is the newest kept
revision at or before it. All changes are made in one transaction; open
conflicts stay open; a put that would clash by case with a live path outside
the rewind is left out. A `rev` point lasts until the user's next change
after it: it is `rewind_too_old` when that change is more than
`--history-days` ago; an `at` point is when it is. `dry_run` changes
nothing and answers the same."""


def other_operations():
    return {
        "/healthz": {"get": op("health", "The server is up.", {"200": ok("Health")},
                               auth=False, tags=["meta"])},
        "/api/v1/openapi.json": {"get": op("openapi", "This document.", {
            "200": {"description": "The OpenAPI document.",
                    "content": json_content({"type": "object"})}},
            auth=False, tags=["meta"])},
        "/api/v1/auth/login": {"post": op("login", "A user token for a name and password.", {
            "200": ok("LoginResponse"),
            "400": error("Bad body.", ["body_invalid"]),
            "401": error("Wrong user name or password (the same answer for both).",
                         ["login_failed"], WWW_AUTHENTICATE),
            "413": TOO_LARGE,
            "429": TOO_MANY_ATTEMPTS,
        }, body=json_body("LoginRequest"), auth=False, tags=["auth"])},
    }


def aliased(operation, prefix):
    """The operation under an alias prefix: a distinct operationId and tag,
    and links to the alias operations."""
    if prefix == PREFIXES[0]:
        return operation
    operation = json.loads(json.dumps(operation))
    for response in operation["responses"].values():
        for target in response.get("links", {}).values():
            target["operationId"] += "Alias"
    return {**operation, "operationId": operation["operationId"] + "Alias",
            "tags": operation["tags"] + ["alias"]}


DESCRIPTION = """\
A self-hosted server that keeps one user's library (a tree of files) in sync
across that user's devices.

Every route under `/api/v1/sync` is also served under the alias `/api/sync`
with identical behaviour (the alias operations carry the tag `alias`).

**Authentication.** Everything but `/healthz`, `/api/v1/openapi.json` and
`/api/v1/auth/login` needs `Authorization: Bearer <JWT>` (HS256 only): a
user token (`sub`) or a device token (`sub`, `typ: "device"`, `did`,
`ver`). A missing or bad token is 401 with `WWW-Authenticate: Bearer`.
A device token may not register, delete or regenerate tokens of devices,
nor read or change another device (403).

**Which device is syncing.** `/changes`, `/ack`, `/report` and `/upload`
act for a device: the device token's, or with a user token the one named by
`X-Device-Id` (400 `device_required` without one, 403 for a device that is
not the caller's). `X-Device-Id` naming one of the caller's devices on any
authenticated call marks that device as seen.

**Errors** are `{"title", "description", "code"}`; clients branch on `code`.
JSON bodies over 2 MiB are refused with 413, and a body holding more than
50,000 JSON values (however small) with 400 `body_invalid`. A route that exists answers an
unlisted method with 405 `method_not_allowed`; an unknown route is 404
`not_found`. A trailing slash names the same route. `OPTIONS` on a route
answers 200 with an `Allow` header (with a token where the route needs one).
"""


DISK_FULL_WRITE = error(
    "The server's disk is full (or would be below the `--min-free` reserve for an upload "
    "session): nothing was changed; try again once space returns. The server recovers by "
    "itself; reads keep working.", ["insufficient_storage"])
DISK_FULL_READ = error(
    "The server's disk is full and this request had to write: only the first request of a "
    "user the server has not seen yet does (it records the user). Try again later.",
    ["insufficient_storage"])


def with_disk_full(methods):
    """Every operation of the sync API can meet a full disk: 507 on each."""
    for method, operation in methods.items():
        operation["responses"].setdefault(
            "507", DISK_FULL_READ if method in ("get", "head") else DISK_FULL_WRITE)
    return methods


def build():
    paths = {}
    for prefix in PREFIXES:
        for template, methods in {**sync_operations(), **wait_operations(),
                                  **history_operations()}.items():
            methods = with_disk_full(methods)
            paths[prefix + template] = {m: aliased(o, prefix) for m, o in methods.items()}
    paths.update(other_operations())
    return {
        "openapi": "3.1.0",
        "info": {"title": "sync-server", "version": package_version(), "description": DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": n} for n in
                 ("devices", "sync", "conflicts", "uploads", "download", "history", "auth",
                  "meta", "alias")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A user token (from `POST /api/v1/auth/login` or "
                               "`app.py token NAME`) or a device token (from device "
                               "registration or token regeneration)."}},
            "schemas": SCHEMAS,
        },
    }


def render():
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        with open(OUTPUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUTPUT} is out of date: run python {__file__}", file=sys.stderr)
                return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
