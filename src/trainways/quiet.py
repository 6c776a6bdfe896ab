"""TensorFlow's start-up noise, hidden: the C++ log level while training
(:func:`quiet_tensorflow`) and the lines TensorFlow and its CUDA probe print before its logging
starts, filtered out of file descriptor 2 while the backend starts (:func:`start_backend_quietly`).
Real errors still show. Used by the CLI, before and after the backend is chosen.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ info and warning lines while training (tf.data's partial-cache
    warning when fit builds the model, for one), unless the user set the level.

    The lines TensorFlow prints before its logging is initialised are caught by
    :func:`start_backend_quietly`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# What TensorFlow and its CUDA probe print on every start, error or not, on a machine like this
# one: absl's preamble, info lines, the CPU-instruction note, a failed cuInit without a GPU.
_STARTUP_NOISE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog|^I\d{4} |cpu_feature_guard|"
    r"^To enable the following instructions|cuInit|cuda drivers|cudart_stub|TensorRT|oneDNN"
)


@contextlib.contextmanager
def _startup_noise_filtered() -> Iterator[None]:
    """Catch what C++ code writes to file descriptor 2, then pass on all but the known noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _STARTUP_NOISE.search(line):
                    print(line, file=sys.stderr)


def start_backend_quietly() -> None:
    """Import the backend and let it probe its devices with the start-up noise filtered out."""
    with _startup_noise_filtered():
        # Imported here, inside the filter: importing the backend is what prints.
        from trainways.backends import current

        current().devices.probe()
