"""``GET /history/{path}``, ``POST /restore``, ``GET /trash`` and
``POST /rewind`` (SPEC §8). ``GET /download/{path}?rev=R`` lives with the
download."""

from .. import history
from .common import acting_device, principal, read_json
from .download import library_path


def changing_device(req):
    """The device a restore or rewind is made by: the device token's, or
    ``X-Device-Id`` with a user token; None for a user token alone."""
    if principal(req).is_device or req.get_header("X-Device-Id"):
        return acting_device(req).id
    return None


class History:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp, path):
        resp.media = history.history(self.rt, principal(req).user.id, library_path(req, path),
                                     req.get_param("cursor"), req.get_param("limit"))


class Trash:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp):
        resp.media = history.trash(self.rt, principal(req).user.id, req.get_param("prefix"),
                                   req.get_param("cursor"), req.get_param("limit"))


class Restore:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp):
        body = read_json(req)
        resp.media = history.restore(self.rt, principal(req).user.id, changing_device(req), body)


class Rewind:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp):
        body = read_json(req)
        resp.media = history.rewind(self.rt, principal(req).user.id, changing_device(req), body)
