"""The HTTP server: waitress, with the settings that keep slow or idle
connections from locking everyone else out (SPEC §6).

waitress reads requests asynchronously, so a connection trickling its
headers costs a socket, not a worker thread; what runs out first is
waitress's ``connection_limit`` (100 by default: 98 tricklers stopped every
other client) and then the process's file descriptors. ``create_server``
raises the first, polls with ``poll()`` (``select()`` stops at descriptor
1024), and raises the soft descriptor limit so that the connection limit
can be reached, or lowers the limit to fit.
"""

import logging
import resource
import time

import waitress

from . import bodygate

log = logging.getLogger("sync")

# Idle keep-alive connections are closed after this long (waitress: 120 s).
IDLE_TIMEOUT_S = 60
# Per connection: its socket, and a temporary file for a large request body
# while waitress receives it. Beyond that: the database, blobs being
# streamed, the listening socket, logs.
FDS_PER_CONNECTION = 2
FDS_SPARE = 256


def fd_budget(wanted):
    """Raise the soft limit on open files towards ``wanted`` (never above the
    hard limit); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def connection_limit(config, budget=fd_budget):
    """The connection limit to use: the setting, or fewer when the process
    may not open enough files for it (``budget(wanted)``: the files it may open)."""
    wanted = config.max_connections
    soft = budget(wanted * FDS_PER_CONNECTION + FDS_SPARE + config.threads)
    if soft == resource.RLIM_INFINITY:
        return wanted
    fits = max((soft - FDS_SPARE - config.threads) // FDS_PER_CONNECTION, 16)
    if fits < wanted:
        log.warning("only %d connections fit in the limit of %d open files (ulimit -n); "
                    "--max-connections %d lowered to %d", fits, soft, wanted, fits)
        return fits
    return wanted


def live_adjustments(config):
    """waitress settings for waiting requests (``POST /changes/wait``): a
    thread for each possible waiter beside the --threads that serve
    everything else, and connections kept readable while a request runs, so
    a waiter learns within a second that its client went away
    (``waitress.client_disconnected``)."""
    return {"threads": config.threads + config.max_waiters,
            "channel_request_lookahead": 1}


def options(config):
    """waitress settings for ``config`` (``waitress.create_server`` keywords)."""
    return {**_base_options(config), **live_adjustments(config)}


def _base_options(config):
    return dict(
        host=config.host, port=config.port, threads=config.threads, ident="sync",
        # A WebDAV PUT carries a whole file: bodies up to the largest file,
        # taken only from a request whose credentials hold (sync.bodygate).
        max_request_body_size=max(bodygate.body_limits(config)),
        # The app works out the client address (``--trusted-proxies``, a
        # list, where waitress trusts one address) and drops the proxy
        # headers of everyone else itself (``sync.middleware.ClientAddress``).
        clear_untrusted_proxy_headers=False,
        connection_limit=connection_limit(config),
        channel_timeout=IDLE_TIMEOUT_S,
        asyncore_use_poll=True,
        # Read sockets in large pieces (waitress's default is much slower
        # for uploads: bench/transfer.py). Request bodies over 512 KiB stay
        # in waitress's temporary files: held in memory, every chunk arriving
        # at once would count (bench/memory.py), and the files are deleted
        # before the kernel writes them back. Figures in bench/README.md.
        recv_bytes=256 * 1024)


def create_server(app, config, **overrides):
    """A waitress server for ``app`` (not started: call ``run()``), with the
    app's body gate (``create_app``'s has one) checking the credentials of a
    request before its body is taken in."""
    kwargs = options(config)
    kwargs.update(overrides)
    server = waitress.create_server(app, **kwargs)
    gate = getattr(app, "body_gate", None)
    if gate is not None:
        bodygate.install(server, gate)
    return server



# On a stop, requests in progress get this long to finish and send their
# answers; then the process ends whatever is still running.
STOP_GRACE_S = 5


def _close_idle(server):
    """Close the connections with no request in progress (those with an
    answer still to send once it is sent); the connections left open."""
    from waitress.channel import HTTPChannel

    left = 0
    for channel in list(server._map.values()):
        if not isinstance(channel, HTTPChannel):
            continue
        if channel.requests:
            left += 1
        elif channel.total_outbufs_len:
            channel.close_when_flushed = True
            left += 1
        else:
            channel.handle_close()
    return left


def serve(server, stopping, before_drain=lambda: None, grace_s=STOP_GRACE_S):
    """Run ``server`` until ``stopping()`` turns true, then stop in order:
    no new connections, ``before_drain()`` (it wakes waiting requests), up
    to ``grace_s`` seconds for the requests in progress to finish and send
    their answers (no new request is read), then the task threads stopped.

    The loop looks at ``stopping()`` between two turns, at most
    ``asyncore_loop_timeout`` apart, so a signal handler only sets a flag. A
    handler that raised would interrupt the loop anywhere, possibly between
    taking a connection's lock and the ``try`` that releases it; a task
    thread would then wait for that lock for ever."""
    from waitress import wasyncore

    loop_timeout = server.adj.asyncore_loop_timeout
    while not stopping():
        wasyncore.loop(timeout=loop_timeout, map=server._map, use_poll=True, count=1)
    wasyncore.dispatcher.close(server)  # the listening socket: no new connections
    before_drain()
    deadline = time.monotonic() + grace_s
    while _close_idle(server) and time.monotonic() < deadline:
        wasyncore.loop(timeout=0.1, map=server._map, use_poll=True, count=1)
    dispatcher = server.task_dispatcher
    dispatcher.shutdown(timeout=1)
    if not dispatcher.threads:
        # No task thread is left to pull the trigger: close it and the rest.
        wasyncore.close_all(server._map)
