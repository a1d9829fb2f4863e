"""The error catalogue and the one JSON error shape.

Every 4xx carries ``{"title", "description", "code"}``; the codes below are
part of the API contract (clients branch on them). Domain modules raise
``SyncError``; ``sync.wsgi`` renders it. Nothing here imports Falcon.

Every code the server answers is a constant here, and ``CODES`` holds them
all: ``tests/test_errors.py`` fails on a code spelled anywhere else, and the
test client checks every error answer of the suite against ``CODES``.
"""

# Codes named by the specification.
PATH_INVALID = "path_invalid"
CURSOR_INVALID = "cursor_invalid"
CURSOR_EXPIRED = "cursor_expired"
LIMIT_INVALID = "limit_invalid"
BODY_INVALID = "body_invalid"
BODY_TOO_LARGE = "body_too_large"
DEVICE_REQUIRED = "device_required"
CHUNK_INVALID = "chunk_invalid"
DIGEST_MISMATCH = "digest_mismatch"
CHUNKS_MISSING = "chunks_missing"
ALREADY_RESOLVED = "already_resolved"
QUOTA_EXCEEDED = "quota_exceeded"
INSUFFICIENT_STORAGE = "insufficient_storage"

# Codes of our own.
UNAUTHORIZED = "unauthorized"
LOGIN_FAILED = "login_failed"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
METHOD_NOT_ALLOWED = "method_not_allowed"
RESOLUTION_INVALID = "resolution_invalid"
RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
BAD_REQUEST = "bad_request"
FILE_TOO_LARGE = "file_too_large"  # a file over --max-file-size
UPLOAD_BUSY = "upload_busy"
UPLOAD_COMPLETED = "upload_completed"
UPLOAD_LOST = "upload_lost"
CSRF_INVALID = "csrf_invalid"
# History (SPEC §8).
REV_INVALID = "rev_invalid"
REWIND_TOO_OLD = "rewind_too_old"
CASE_CLASH = "case_clash"
INTERNAL = "internal_error"
ERROR = "error"  # an HTTP error with a status DEFAULT_CODES does not name
# WebDAV (SPEC §10) and login throttling (SPEC §3).
PRECONDITION_FAILED = "precondition_failed"  # If-Match / If-None-Match / Overwrite: F
PATH_CONFLICT = "path_conflict"              # inside a file, a file where a folder is, a case clash
TOO_MANY_ATTEMPTS = "too_many_attempts"      # failed logins past the throttle
TOO_MANY_UPLOADS = "too_many_uploads"        # past --max-open-uploads open sessions

# Every code above.
CODES = frozenset(value for name, value in list(globals().items())
                  if name.isupper() and isinstance(value, str))

# The code a bare HTTP error (an unknown route, a wrong method) gets.
DEFAULT_CODES = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    413: BODY_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    416: RANGE_NOT_SATISFIABLE,
    500: INTERNAL,
    507: INSUFFICIENT_STORAGE,
}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    507: "Insufficient Storage",
}


class SyncError(Exception):
    """An error a client caused or must know about, with its HTTP status.

    ``extra`` adds top-level members to the JSON body (``missing`` for
    ``chunks_missing``); ``headers`` adds response headers.
    """

    def __init__(self, status, code, description, extra=None, headers=None):
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self):
        body = {"title": TITLES.get(self.status, "Error"),
                "description": self.description, "code": self.code}
        body.update(self.extra)
        return body


def bad_request(code, description, **extra):
    return SyncError(400, code, description, extra)


def not_found(description="No such resource.", code=NOT_FOUND):
    return SyncError(404, code, description)


def forbidden(description, code=FORBIDDEN):
    return SyncError(403, code, description)


def unauthorized(description):
    return SyncError(401, UNAUTHORIZED, description,
                     headers={"WWW-Authenticate": "Bearer"})
