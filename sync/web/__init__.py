"""The web page (SPEC §11): Falcon responders rendering Jinja2 templates,
one stylesheet and a few ES modules, all inside this package.

``SecurityHeaders`` puts the page's security headers on every answer of the
server. ``Sessions`` authenticates the page's routes (a resource with a
``web`` attribute) by their session cookie and checks the CSRF token of
every change; the JSON API keeps its Bearer tokens. ``routes(rt)`` lists the
page's routes; ``render_error`` answers a failed page with a page.
"""

import ipaddress
import urllib.parse

import falcon

from .. import errors
from ..auth import Principal
from ..middleware import FORWARDED_PROTO_KEY
from ..models import User
from . import render, sessions, views

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
NOT_PAGES = ("/api/", "/dav", "/healthz")
MAX_FORM_BYTES = 64 * 1024


class SecurityHeaders:
    """The security headers of SPEC §11 on every answer, pages or not."""

    def process_response(self, req, resp, resource, req_succeeded):
        for name, value in SECURITY_HEADERS.items():
            if resp.get_header(name) is None:  # a download sets a stricter policy
                resp.set_header(name, value)


def trusted_proxies(config):
    """The networks of ``--trusted-proxies`` (none when the setting is absent),
    from a comma-separated text or a tuple of addresses or networks."""
    raw = getattr(config, "trusted_proxies", None) or ()
    parts = raw.split(",") if isinstance(raw, str) else raw
    found = []
    for part in parts:
        try:
            found.append(ipaddress.ip_network(str(part).strip(), strict=False))
        except ValueError:
            continue
    return found


def is_https(rt, req):
    """The request came over HTTPS: directly, or through a trusted proxy
    that says so in ``X-Forwarded-Proto``."""
    if req.env.get("wsgi.url_scheme") == "https":
        return True
    try:
        peer = ipaddress.ip_address((req.env.get("REMOTE_ADDR") or "").strip("[]"))
    except ValueError:
        return False
    if not any(peer in net for net in trusted_proxies(rt.config)):
        return False
    # The header as a trusted proxy sent it (kept aside when proxy headers
    # are dropped from the request), else as it still stands.
    proto = req.env.get(FORWARDED_PROTO_KEY) or req.get_header("X-Forwarded-Proto") or ""
    return proto.split(",")[-1].strip().lower() == "https"


def form(req):
    """The fields of a urlencoded form (the first value of each), bounded."""
    if "form" in req.context:
        return req.context.form
    fields = {}
    if (req.content_type or "").startswith(falcon.MEDIA_URLENCODED):
        if (req.content_length or 0) > MAX_FORM_BYTES:
            raise errors.SyncError(413, errors.BODY_TOO_LARGE, "The form is too large.")
        raw = req.bounded_stream.read(MAX_FORM_BYTES + 1).decode("utf-8", "replace")
        if len(raw) > MAX_FORM_BYTES:
            raise errors.SyncError(413, errors.BODY_TOO_LARGE, "The form is too large.")
        for name, value in urllib.parse.parse_qsl(raw, keep_blank_values=True):
            fields.setdefault(name, value)
    req.context.form = fields
    return fields


def local_target(value, default="/"):
    """``value`` when it is a path on this site (no scheme, host or '//'), else ``default``."""
    if (isinstance(value, str) and value.startswith("/") and not value.startswith("//")
            and "\\" not in value and value.isprintable()):
        return value
    return default


class Sessions:
    """Authenticates the page's routes by their session cookie.

    ``web = "public"``: no session needed (the login form, static files).
    ``web = "page"``: without a session, a redirect (303) to the login form.
    ``web = "api"``: the JSON answers the page's scripts call; 401 without a
    session, and the caller acts for the web page's device.
    Every request that may change something must carry the session's CSRF
    token (the ``csrf`` form field or the ``X-CSRF-Token`` header): 403 without.
    """

    def __init__(self, rt):
        self.rt = rt

    def process_request(self, req, resp):
        if not req.path.startswith(NOT_PAGES):
            req.context.web = "public"  # a mistyped address gets a page, not JSON

    def process_resource(self, req, resp, resource, params):
        kind = getattr(resource, "web", None)
        if kind is None:
            return
        req.context.web = kind
        if kind == "public":
            return
        session = sessions.find(self.rt, req.cookies.get(sessions.COOKIE))
        if session is None:
            if kind == "page":
                target = local_target(req.relative_uri) if req.method == "GET" else "/"
                raise falcon.HTTPSeeOther(
                    "/login" if target == "/" else render.url("/login", next=target))
            raise errors.unauthorized("Log in to the web page first.")
        req.context.session = session
        req.context.user_name = session.user_name
        user = User(id=session.user_id, name=session.user_name)
        req.context.principal = Principal(user)
        # The upload API acts for the web page's device (``acting_device``).
        req.context.device = views.web_device(self.rt, user) \
            if getattr(resource, "acts", False) else None
        req.context.device_refused = errors.bad_request(
            errors.DEVICE_REQUIRED, "This page does not act for a device.")
        if req.method not in SAFE_METHODS:
            sent = req.get_header("X-CSRF-Token")
            if sent is None:
                sent = form(req).get("csrf")
            if not session.csrf_matches(sent):
                raise errors.SyncError(
                    403, errors.CSRF_INVALID,
                    "This form has expired or did not come from this site: reload the "
                    "page and try again.")


def render_error(web, req, resp, status, description, headers=None):
    """A failed page request answered with a page (True), or False when the
    request was not for a page (the JSON answer stands)."""
    if req.context.get("web") not in ("page", "public"):
        return False
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.set_header("Cache-Control", "no-store")
    for name, value in (headers or {}).items():
        resp.set_header(name, value)
    resp.text = web.page(req, "error.html", status=status,
                         title=errors.TITLES.get(status, "Error"), description=description)
    return True
