"""Request helpers shared by the resources: bounded JSON bodies and the
caller's principal and device."""

import json

from .. import devices, errors

MAX_JSON_BODY = 2 * 1024 * 1024


def read_json(req, max_bytes=MAX_JSON_BODY):
    """The request's JSON object; 413 over ``max_bytes`` (checked before the
    body is read whole), 400 ``body_invalid`` when it is not a JSON object."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise errors.SyncError(413, errors.BODY_TOO_LARGE,
                               f"JSON bodies are limited to {max_bytes} bytes.")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise errors.SyncError(413, errors.BODY_TOO_LARGE,
                               f"JSON bodies are limited to {max_bytes} bytes.")
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a body of 100 000 "[" nests deeper than the parser goes.
        raise errors.bad_request(errors.BODY_INVALID, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.bad_request(errors.BODY_INVALID, "The body must be a JSON object.")
    return body


def _not_json(constant):
    """NaN and Infinity are not JSON, though Python's parser takes them."""
    raise ValueError(f"{constant} is not JSON")


def principal(req):
    return req.context.principal


def acting_device(req):
    """The device a sync call acts for (see ``sync.devices.acting_device``)."""
    return devices.acting_device(req.context.principal, req.get_header("X-Device-Id"))
