"""WebDAV access to the library (SPEC §10), on WsgiDAV: ``DavApp`` is
mounted beside the Falcon app at ``/dav/``; ``/dav/files/{user}/`` is the
root of a user's library."""

from .app import DavApp

__all__ = ["DavApp"]
