"""``GET /``: a person opening the server's address in a browser gets a
short HTML page naming the server, its version and where the API and its
document are, not a JSON 404."""

from sync import __version__


def test_the_root_is_a_short_html_page(testapp):
    resp = testapp.get("/", status=200)
    assert resp.content_type == "text/html"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    page = resp.text
    assert f"<title>sync-server {__version__}</title>" in page
    assert f"<h1>sync-server {__version__}</h1>" in page
    assert "<code>/api/v1/sync</code>" in page
    assert '<a href="/api/v1/openapi.json">' in page and '<a href="/healthz">' in page
    assert "<script" not in page


def test_head_of_the_root_has_no_body(testapp):
    resp = testapp.head("/", status=200)
    assert resp.body == b"" and int(resp.headers["Content-Length"]) > 200
