"""Bounded memory (SPEC §6) in the pieces that keep it bounded; the figures
come from ``bench/memory.py``."""

import os
import platform
import subprocess
import sys

import pytest

from sync import blobs
from sync.wsgi import tune_malloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_malloc_is_tuned_on_glibc():
    assert tune_malloc() is (platform.libc_ver()[0] == "glibc")


def test_a_file_slice_reads_at_most_a_block_at_a_time(tmp_path):
    path = tmp_path / "blob"
    data = bytes(range(256)) * (3 * blobs.BLOCK // 256 + 7)
    path.write_bytes(data)
    piece = blobs.FileSlice(str(path), 5, len(data) - 10)
    first = piece.read(4 * blobs.BLOCK)
    assert first == data[5:5 + blobs.BLOCK]
    rest = piece.read(-1)
    assert first + rest == data[5:-5]
    assert piece.read(100) == b""
    piece.close()


@pytest.mark.slow
def test_parallel_chunks_and_downloads_keep_the_real_server_under_100_mib():
    """Sixteen 8 MiB chunks arriving at once, sixteen downloads at once, then
    sixteen logins at once (16 MiB of scrypt each): the peak resident memory
    of ``python app.py`` stays under 100 MiB."""
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "memory.py"), "--size", "192MiB",
         "--chunk-size", "8MiB", "--parallel", "16", "--logins", "16"],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "target < 100 MiB: ok" in proc.stdout


def test_the_page_caches_of_all_server_threads_stay_small():
    """Each thread keeps its connection and its SQLite page cache; so do the
    threads kept for waiting requests, which may serve any request between
    two waits (a waiting thread gives its cache back while it sleeps)."""
    from sync.config import Config
    from sync.db import PRAGMAS
    from sync.httpserver import live_adjustments
    cache_kib = -dict(PRAGMAS)["cache_size"]
    threads = live_adjustments(Config.build())["threads"]
    assert cache_kib * 1024 * (threads + 1) <= 64 * 1024 * 1024
