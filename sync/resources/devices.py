"""``/devices``: register, list, read, rename, delete, new tokens and app passwords."""

import falcon

from .. import devices
from .common import principal, read_json


class Collection:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp):
        resp.media = devices.list_devices(self.rt, principal(req))

    def on_post(self, req, resp):
        resp.media = devices.register(self.rt, principal(req), read_json(req))


class Item:
    def __init__(self, rt):
        self.rt = rt

    def on_get(self, req, resp, device_id):
        resp.media = devices.get(self.rt, principal(req), device_id)

    def on_put(self, req, resp, device_id):
        resp.media = devices.update(self.rt, principal(req), device_id, read_json(req))

    def on_delete(self, req, resp, device_id):
        devices.delete(self.rt, principal(req), device_id)
        resp.status = falcon.HTTP_204


class Token:
    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp, device_id):
        resp.media = devices.regenerate_token(self.rt, principal(req), device_id)


class AppPassword:
    """``/devices/{id}/app-password``: the device's WebDAV password (user token only)."""

    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp, device_id):
        resp.media = devices.set_app_password(self.rt, principal(req), device_id)

    def on_delete(self, req, resp, device_id):
        devices.remove_app_password(self.rt, principal(req), device_id)
        resp.status = falcon.HTTP_204
