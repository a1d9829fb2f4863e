"""Falcon resources: one module per endpoint group, one class per route.

Responders parse the request, call one service function and set the
response. Each module calls the service of the same name (``feed`` calls
``sync.feed``, ``conflicts`` calls ``sync.conflicts``, ...); ``report`` and
``download`` call ``sync.library``. The services know nothing of HTTP.
"""
