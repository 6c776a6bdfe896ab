"""Start-up latency against the issue's targets: CLI help, data info, cached load, SGML build.

Each figure is the median of ``--repeats`` runs; the cache is a private temporary directory, so
the first ``data info`` (which builds it) is not timed.

    python benchmarks/startup.py --data ../shared/data/reuters21578
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

TARGETS = {  # seconds, from the issue
    "trainways --help": 1.0,
    "trainways data info (cached)": 1.0,
    "load_reuters (cached)": 0.5,
    "build from SGML": 2.0,
}


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "trainways.cli", *args],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="Reuters-21578 directory (reut2-*.sgm)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from trainways import data

    cache = tempfile.mkdtemp(prefix="trainways-bench-")
    try:
        env = {**os.environ, "TRAINWAYS_CACHE_DIR": cache}
        _cli("data", "info", "--data", args.data, env=env)  # builds the cache, untimed
        measured = {
            "trainways --help": _median_seconds(lambda: _cli("--help", env=env), args.repeats),
            "trainways data info (cached)": _median_seconds(
                lambda: _cli("data", "info", "--data", args.data, env=env), args.repeats
            ),
            "load_reuters (cached)": _median_seconds(
                lambda: data.load_reuters(args.data, cache_dir=cache), args.repeats
            ),
            "build from SGML": _median_seconds(
                lambda: data.build_from_sgml(args.data), args.repeats
            ),
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'what':<30} {'seconds':>8} {'target':>7} {'target/measured':>16}")
    for name, seconds in measured.items():
        target = TARGETS[name]
        print(f"{name:<30} {seconds:>8.3f} {target:>7.1f} {target / seconds:>16.1f}")


if __name__ == "__main__":
    main()
