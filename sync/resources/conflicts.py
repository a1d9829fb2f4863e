"""``GET /conflicts`` and ``POST /conflicts/{id}/resolve``."""

from .. import library
from . import common


class Collection:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp):
        resp.media = library.list_conflicts(self.rt, common.principal(req).user.id)


class Resolve:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp, conflict_id):
        body = common.read_json(req)
        resp.media = library.resolve(self.rt, common.principal(req).user.id, conflict_id, body)
