"""Request helpers shared by the resources: bounded JSON bodies and the
caller's principal and device."""

import json
import re

from .. import errors

MAX_JSON_BODY = 2 * 1024 * 1024
# A report of 1000 items has about 7 000 values, while a body of the allowed
# size made of "{}," parses into hundreds of thousands of Python objects, many
# times the body's size, and several such requests at once would add up.
# Bodies are refused above this many values.
MAX_JSON_VALUES = 50_000
# A string runs to its closing quote or to the end of the body, and a
# backslash may end it too: no match ever fails, so a body of unterminated
# escapes is scanned once (a pattern that must find the closing quote
# retries from every quote inside and takes quadratic time).
_STRING = re.compile(rb'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)


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
    if len(raw) > MAX_JSON_VALUES and _values(raw) > MAX_JSON_VALUES:
        raise errors.bad_request(errors.BODY_INVALID,
                                 f"The body holds more than {MAX_JSON_VALUES} JSON values.")
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a body of 100 000 "[" nests deeper than the parser goes.
        raise errors.bad_request(errors.BODY_INVALID, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.bad_request(errors.BODY_INVALID, "The body must be a JSON object.")
    return body


def _values(raw):
    """About how many values a JSON text holds: its commas and opening
    brackets outside strings (without building any of them)."""
    skeleton = _STRING.sub(b'""', raw)
    return skeleton.count(b",") + skeleton.count(b"[") + skeleton.count(b"{")


def _not_json(constant):
    """NaN and Infinity are not JSON, though Python's parser takes them."""
    raise ValueError(f"{constant} is not JSON")


def principal(req):
    return req.context.principal


def acting_device(req):
    """The device a sync call acts for, as the ``Auth`` middleware resolved it
    (see ``sync.devices.acting_device``): raises why there is none."""
    if req.context.device is None:
        raise req.context.device_refused
    return req.context.device


STREAM_BLOCK = 64 * 1024


def json_list_stream(key, items):
    """``{"<key>": [item, ...]}`` as an iterable of byte blocks, encoded one
    item at a time (ASCII-escaped, like every JSON answer) so a long list
    never sits whole in memory."""
    block = bytearray(b'{"%s": [' % key.encode("ascii"))
    separator = b""
    for item in items:
        block += separator + json.dumps(item).encode("ascii")
        separator = b", "
        if len(block) >= STREAM_BLOCK:
            yield bytes(block)
            block.clear()
    block += b"]}"
    yield bytes(block)
