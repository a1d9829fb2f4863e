"""Falcon resources: one module per endpoint group, one class per route.

Responders parse the request, call one service function and set the
response; the services (``sync.devices``, ``sync.library``,
``sync.uploads``) know nothing of HTTP.
"""
