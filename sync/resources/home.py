"""``GET /``: a short page for a person who opens the server's address in a
browser, naming the server, its version and where the API and its
document are (until the web page serves ``/``)."""

import html

import falcon

from .. import __version__

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sync-server {version}</title></head>
<body>
<h1>sync-server {version}</h1>
<p>This is a self-hosted sync server: it keeps a library of files in sync across
devices. It is used through its sync client and its API, not through this page.</p>
<ul>
<li>The API: <code>/api/v1/sync</code> (a token is needed)</li>
<li>Its document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a></li>
<li>Health: <a href="/healthz">/healthz</a></li>
</ul>
</body>
</html>
"""


class Home:
    auth = False

    def __init__(self, version=__version__):
        self.page = PAGE.format(version=html.escape(version)).encode("utf-8")

    def on_get(self, req, resp):
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        resp.data = self.page

    def on_head(self, req, resp):
        self.on_get(req, resp)
        resp.data = b""
        resp.content_length = len(self.page)
