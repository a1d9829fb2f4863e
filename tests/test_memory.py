"""Bounded memory (SPEC §6) in the pieces that keep it bounded; the figures
come from ``bench/memory.py``."""

import platform

from sync import blobs
from sync.wsgi import limit_malloc_arenas


def test_malloc_arenas_are_capped_on_glibc():
    assert limit_malloc_arenas() is (platform.libc_ver()[0] == "glibc")


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
