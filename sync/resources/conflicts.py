"""``GET /conflicts`` and ``POST /conflicts/{id}/resolve``."""

import falcon

from .. import conflicts
from . import common


class Collection:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp):
        listing = conflicts.iter_conflicts(self.rt, common.principal(req).user.id)
        resp.content_type = falcon.MEDIA_JSON
        resp.stream = common.json_list_stream("conflicts", listing)


class Resolve:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp, conflict_id):
        body = common.read_json(req)
        resp.media = conflicts.resolve(self.rt, common.principal(req).user.id, conflict_id, body)
