"""``POST /api/v1/auth/login``: a user token for a name and password."""

from .. import auth, errors
from .common import read_json


class Login:
    auth = False

    def __init__(self, rt):
        self.rt = rt

    def on_post(self, req, resp):
        body = read_json(req)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise errors.bad_request(errors.BODY_INVALID,
                                     "'username' and 'password' must be strings.")
        resp.media = auth.login(self.rt, username, password, req.context.get("client") or "-")
