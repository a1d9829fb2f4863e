"""Unauthenticated routes: health check and the API document."""

import os

import falcon

OPENAPI_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs", "api", "openapi.json")


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
