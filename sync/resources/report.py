"""``POST /report``."""

from .. import library
from . import common


class Report:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp):
        device = common.acting_device(req)
        body = common.read_json(req)
        resp.media = library.report(self.rt, device.user_id, device.id, body)
