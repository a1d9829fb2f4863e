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

import waitress

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
        # A WebDAV PUT carries a whole file: bodies up to the largest file.
        max_request_body_size=max(config.max_chunk_size, 2 * 1024 * 1024,
                                  config.max_file_size) + 65536,
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
    """A waitress server for ``app`` (not started: call ``run()``)."""
    kwargs = options(config)
    kwargs.update(overrides)
    return waitress.create_server(app, **kwargs)
