"""``GET /conflicts`` and ``POST /conflicts/{id}/resolve``."""

from .. import conflicts
from . import common


class Collection:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp):
        resp.media = conflicts.list_conflicts(self.rt, common.principal(req).user.id,
                                              req.get_param("cursor"), req.get_param("limit"))


class Resolve:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp, conflict_id):
        body = common.read_json(req)
        resp.media = conflicts.resolve(self.rt, common.principal(req).user.id, conflict_id, body)
