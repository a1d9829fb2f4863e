"""``POST /changes/wait``."""

from .. import wait
from . import common


def _never():
    return False


class Wait:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp):
        device = common.acting_device(req)
        body = common.read_json(req)
        # waitress sets this when it keeps reading the connection during a
        # request (channel_request_lookahead); other servers may not.
        disconnected = req.env.get("waitress.client_disconnected", _never)
        resp.media = wait.wait(self.rt, device.user_id, body, disconnected)
