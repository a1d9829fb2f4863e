"""Templates and static files of the web page, read from the package itself
(so they work after a plain ``pip install .``). Jinja2 escapes every value
put into a page; nothing is marked safe by hand."""

import hashlib
import mimetypes
import os
import urllib.parse
from datetime import datetime, timezone

import jinja2

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC_DIR = os.path.join(HERE, "static")
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".png": "image/png", ".svg": "image/svg+xml", ".ico": "image/x-icon"}


def size(value):
    """Bytes as a person reads them: 0 bytes, 12.3 KB, 4.1 GB (powers of 1000)."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value} byte" + ("" if value == 1 else "s")
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def when(value):
    """An epoch integer or an ISO 8601 UTC string as '2026-11-27 04:32 UTC'."""
    if value is None or value == "":
        return "—"
    try:
        if isinstance(value, str):
            stamp = datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(
                tzinfo=timezone.utc)
        else:
            stamp = datetime.fromtimestamp(int(value), timezone.utc)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def plural(count, one, many=None):
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def url(_base, **params):
    """``path`` with the given query parameters (None ones left out), encoded."""
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return _base + ("?" + query if query else "")


class Static:
    """The static files, read once: name -> (bytes, content type), and a
    short digest of each for cache-busting URLs."""

    def __init__(self, directory=STATIC_DIR):
        self.files = {}
        for name in sorted(os.listdir(directory)):
            ext = os.path.splitext(name)[1]
            if ext not in STATIC_TYPES:
                continue
            with open(os.path.join(directory, name), "rb") as f:
                data = f.read()
            self.files[name] = (data, STATIC_TYPES.get(ext) or mimetypes.guess_type(name)[0],
                                hashlib.sha256(data).hexdigest()[:12])

    def url(self, name):
        return f"/static/{name}?v={self.files[name][2]}"


def environment(static):
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    env.filters.update(size=size, when=when)
    env.globals.update(static=static.url, url=url, plural=plural)
    return env
