"""Child ``trainways`` processes: the arguments that train a configuration file into a run
directory, and running one to its end with its peak memory.

``trainways compare`` trains each of its runs in a child, and so does ``trainways agree
--backends`` (:mod:`trainways.measure`) each backend: a process runs Keras on one backend, and a
child's ``ru_maxrss`` is that run's own peak memory. Nothing here imports Keras.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def child_argv(config_file: Path, out: Path, *, quiet: bool = True) -> list[str]:
    """``trainways train`` arguments that train the configuration in ``config_file`` into ``out``.

    The child reads its whole configuration from the file (``train --config``), so every option,
    today's and tomorrow's, reaches it without being listed here.
    """
    return [
        "train",
        "--config",
        str(config_file),
        "--out",
        str(out),
        *(["--quiet"] if quiet else []),
    ]


def run_child(argv: list[str]) -> tuple[int, float]:
    """Run ``trainways`` with ``argv``; return its exit status and peak resident memory (MB)."""
    child = subprocess.Popen([sys.executable, "-m", "trainways.cli", *argv])
    while True:
        try:
            _, status, usage = os.wait4(child.pid, 0)
            break
        except KeyboardInterrupt:
            # Ctrl-C reached the child too (same process group): let it stop at its batch
            # boundary and mark its run interrupted, then report how to resume.
            continue
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss / 1024  # Linux reports kilobytes
