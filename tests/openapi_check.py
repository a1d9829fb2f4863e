"""Checks a response against ``docs/api/openapi.json``.

``check_response(method, url, resp)`` finds the operation by method and
path template, fails when the status is not one the document lists for it,
checks the documented required headers and content type, and validates a
JSON body against the response's schema. ``tests/conftest.py`` registers it
in ``helpers.RESPONSE_CHECKS``, so every response of the WebTest suite is
checked.
"""

import functools
import json
import os
import re
from urllib.parse import unquote, urlsplit

import falcon.routing
import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENT = os.path.join(ROOT, "docs", "api", "openapi.json")

# A path parameter that is the last segment and spans several segments, as
# Falcon's ``{path:path}`` converter does.
SPANNING_PARAMS = {"path"}


@functools.lru_cache(maxsize=None)
def document():
    with open(DOCUMENT, encoding="utf-8") as f:
        return json.load(f)


def _template_regex(template):
    parts = []
    for piece in re.split(r"(\{[^}]+\})", template):
        if piece.startswith("{"):
            name = piece[1:-1]
            parts.append(f"(?P<{name}>.*)" if name in SPANNING_PARAMS else f"(?P<{name}>[^/]+)")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)  # a path may hold a newline


@functools.lru_cache(maxsize=None)
def _templates():
    """(regex, template) for every documented path, literal paths first."""
    paths = document()["paths"]
    ordered = sorted(paths, key=lambda t: ("{" in t, -len(t)))
    return [(_template_regex(t), t) for t in ordered]


def find_template(url):
    """The documented path template ``url`` falls under, or None."""
    path = unquote(urlsplit(url).path)
    if len(path) > 1:
        path = path[:-1] if path.endswith("/") else path  # the app strips one trailing slash
    for regex, template in _templates():
        if regex.fullmatch(path):  # not "$", which also matches before a final newline
            return template
    return None


@functools.lru_cache(maxsize=None)
def validator(template, method, status, media_type):
    """A JSON Schema validator for one documented response body."""
    response = document()["paths"][template][method]["responses"][status]
    schema = dict(response["content"][media_type]["schema"])
    schema["components"] = document()["components"]  # so "#/components/..." resolves
    return jsonschema.Draft202012Validator(schema)


def _media_type(content_type):
    return (content_type or "").split(";")[0].strip().lower()


def check_response(method, url, resp):
    """Fail unless ``resp`` is an answer the API document allows for ``method url``."""
    status = resp.status_int
    template = find_template(url)
    if template is None:
        assert status == 404, f"{method} {url}: not in the API document, yet answered {status}"
        return
    operation = document()["paths"][template].get(method.lower())
    if operation is None:
        assert status == 405, (f"{method} {template} is not in the API document, "
                               f"yet answered {status}")
        return
    response = operation["responses"].get(str(status))
    assert response is not None, (
        f"{method} {template} answered {status}, which the API document does not list "
        f"(it lists {', '.join(operation['responses'])}); body: {resp.body[:300]!r}")
    for name, header in response.get("headers", {}).items():
        if header.get("required"):
            assert name in resp.headers, f"{method} {template} {status}: no {name} header"
    content = response.get("content")
    if method == "HEAD" or not content:
        assert not resp.body, (f"{method} {template} {status}: the document lists no body, "
                               f"yet one came: {resp.body[:300]!r}")
        return
    media_type = _media_type(resp.headers.get("Content-Type"))
    if media_type not in content:
        assert "*/*" in content, (f"{method} {template} {status}: Content-Type "
                                  f"{media_type!r} is not one of {sorted(content)}")
        return
    if media_type != "application/json":
        return
    body = json.loads(resp.body)
    errors = sorted(validator(template, method.lower(), str(status), media_type)
                    .iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
    assert not errors, (
        f"{method} {template} {status}: the body does not match the API document:\n"
        + "\n".join(f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in errors[:10]))


def served_routes(app, pages=False):
    """{template: (resource, methods)} from a Falcon app's router, with
    Falcon's ``{name:converter}`` written as OpenAPI's ``{name}`` and methods
    in lower case (Falcon's built-in OPTIONS left out). The web page's
    routes (resources with a ``web`` attribute) are not part of the API
    document: they are left out, or with ``pages=True`` the only ones listed."""
    routes = {}

    def walk(nodes):
        for node in nodes:
            if node.resource is not None and hasattr(node.resource, "web") == pages:
                template = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", node.uri_template)
                methods = {m.lower() for m in falcon.routing.map_http_methods(node.resource)}
                routes[template] = (node.resource, methods)
            walk(node.children)

    walk(app._router._roots)
    return routes
