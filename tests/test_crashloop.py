"""A short crash loop (SPEC §6, nothing acknowledged is lost): a few
``kill -9`` of the real server in the middle of a mixed workload, with
every invariant of ``bench/crashloop.py`` checked after each restart."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_kill_9_loses_nothing_acknowledged():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "crashloop.py"), "--kills", "4",
         "--max-seconds", "20", "--workers", "2"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kills survived:" in proc.stdout
    survived = int(proc.stdout.split("kills survived:")[1].split()[0])
    assert survived >= 3, proc.stdout
