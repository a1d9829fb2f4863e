"""Library paths: validation and Unicode NFC normalization.

A library path is a relative POSIX path such as ``books/Dune.epub``. Every
path a client sends goes through ``normalize`` before it is stored or
compared; none is ever joined into a filesystem path (blobs are named by
their sha256). A refused path raises ``PathError``, a ``ValueError``: the
HTTP app answers it 400 ``path_invalid``, other callers decide for themselves.
"""

import re
import unicodedata

MAX_PATH_BYTES = 4096
MAX_SEGMENT_BYTES = 255
# Unicode category Cc is exactly these 65 code points; a regex checks a
# path in one pass (a report validates up to 1,000 paths per request).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Line and paragraph separators, and the bidirectional embeddings, overrides
# and isolates: "invoice\u202etxt.exe" displays as "invoiceexe.txt".
_DISGUISING = re.compile("[\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class PathError(ValueError):
    """A path the library cannot hold; the message says why."""


def _invalid(path, why):
    return PathError(f"Invalid path {path!r}: {why}.")


def normalize(path):
    """The NFC form of ``path``; raises ``PathError`` for a path the library
    cannot hold."""
    if not isinstance(path, str):
        raise PathError("A path must be a string.")
    if not path:
        raise _invalid(path, "it is empty")
    if _CONTROL.search(path):
        raise _invalid(path, "it contains a control character")
    if _DISGUISING.search(path):
        raise _invalid(path, "it contains a line separator or a bidirectional control, "
                             "which can make a name display as another")
    if "\\" in path:
        raise _invalid(path, "it contains a backslash; use / between folders")
    try:
        path = unicodedata.normalize("NFC", path)
        encoded = path.encode("utf-8")
    except UnicodeError:
        raise _invalid(path, "it is not valid Unicode") from None
    if path.startswith("/"):
        raise _invalid(path, "it must be relative, not start with /")
    if len(encoded) > MAX_PATH_BYTES:
        raise _invalid(path, f"it is over {MAX_PATH_BYTES} bytes")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise _invalid(path, "it has an empty, '.' or '..' segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _invalid(path, f"a segment is over {MAX_SEGMENT_BYTES} bytes")
    return path


def fold(path):
    """The key under which two paths that differ only by case collide."""
    return path.casefold()
