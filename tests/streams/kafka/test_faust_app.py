"""The worker's process tuning: the open-files limit raised for the instances' connections."""

from __future__ import annotations

import resource
import subprocess
import sys

PROBE = """
import resource, sys
from pushstream.streams.kafka.faust_app import raise_open_files
warning = raise_open_files(int(sys.argv[1]))
print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], warning or "")
"""


def _probe(soft: int, hard: int, connections: int) -> tuple[int, str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    out = subprocess.run([sys.executable, "-c", PROBE, str(connections)], capture_output=True, text=True,
                         preexec_fn=limit, check=True, timeout=60).stdout.strip()
    got, _, warning = out.partition(" ")
    return int(got), warning


def test_the_soft_limit_is_raised_as_far_as_the_connections_need() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    got, warning = _probe(512, hard, 2 * 1024)  # two instances at the default max_in_flight
    assert got == min(2 * 1024 + 256, hard)
    assert (warning == "") is (hard >= 2 * 1024 + 256)
    assert _probe(512, hard, 100) == (512, "")  # enough already: left alone


def test_a_hard_limit_too_low_is_one_warning_line() -> None:
    got, warning = _probe(256, 600, 2048)
    assert got == 600
    assert warning == ("open files are limited to 600 (ulimit -n; hard limit 600), and the instances' max_in_flight "
                       "add up to 2048 connections: raise the limit or lower max_in_flight")
