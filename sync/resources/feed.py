"""``GET /changes`` and ``POST /ack``."""

import falcon

from .. import feed
from . import common


class Changes:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp):
        device = common.acting_device(req)
        resp.text = feed.changes(self.rt, device.user_id, req.get_param("cursor"),
                                 req.get_param("limit"))
        resp.content_type = falcon.MEDIA_JSON


class Ack:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp):
        device = common.acting_device(req)
        resp.media = feed.ack(self.rt, device.id, common.read_json(req))
