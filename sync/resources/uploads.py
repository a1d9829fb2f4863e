"""``/upload``: resumable chunked upload sessions."""

import falcon

from .. import uploads
from .common import acting_device, principal, read_json


class Collection:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp):
        device = acting_device(req)
        resp.media = uploads.create(self.rt, principal(req).user, device, read_json(req))


class Item:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp, upload_id):
        acting_device(req)
        resp.media = uploads.status(self.rt, principal(req).user, upload_id)

    def on_delete(self, req, resp, upload_id):
        acting_device(req)
        uploads.cancel(self.rt, principal(req).user, upload_id)
        resp.status = falcon.HTTP_204


class Chunk:
    def __init__(self, rt):
        self.rt = rt

    def on_put(self, req, resp, upload_id, index):
        acting_device(req)
        resp.media = uploads.put_chunk(
            self.rt, principal(req).user, upload_id, index, req.bounded_stream.read,
            req.content_length, req.get_header("Content-Digest"))


class Complete:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp, upload_id):
        acting_device(req)
        resp.media = uploads.complete(self.rt, principal(req).user, upload_id)
