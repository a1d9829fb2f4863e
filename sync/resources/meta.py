"""Unauthenticated routes: health check and the API document."""

import falcon

from .. import assets

OPENAPI_PATH = assets.path("openapi.json")


class Health:
    auth = False

    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class OpenAPI:
    """Serves ``docs/api/openapi.json`` as it is on disk."""

    auth = False

    def __init__(self, path=OPENAPI_PATH):
        self.path = path

    def on_get(self, req, resp):
        with open(self.path, "rb") as f:
            resp.data = f.read()
        resp.content_type = falcon.MEDIA_JSON
