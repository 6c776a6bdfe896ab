"""Kill at every moment: the full sweep behind ``tests/test_kill_anywhere.py``.

For each method (and backend) and every moment of ``tests/kill_at.py``'s timeline, a seeded
``--deterministic`` run on a synthetic corpus SIGKILLs itself at that moment, is resumed to the
end (``trainways train --resume``), and must equal the unbroken run: ``history.csv``, the final
weights and ``best.keras``'s, bit for bit. Prints one line per moment and exits 1 if any
differs. ``--loop`` sweeps a ``trainways.Loop`` script (``examples/tutorial_gradient_tape.py``)
the same way. Children run ``--jobs`` at a time.

    python benchmarks/kill_sweep.py [--methods fit,batch,loop] [--backends tensorflow,jax,torch]
                                    [--loop] [--jobs 4] [--moments row:1,model]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path.insert(0, str(TESTS))
EPOCHS = 3


def _child(args: list[str], env: dict[str, str], moment: str = "") -> int:
    env = {**os.environ, "TRAINWAYS_ALLOW_OTHER_DATA": "1", **env, "TRAINWAYS_TEST_KILL_AT": moment}
    env.pop("TF_CONFIG", None)
    command = [sys.executable, str(TESTS / "kill_at.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, check=False).returncode


def _same(run: Path, reference: Path, best: bool) -> str:
    """ "" if ``run`` equals ``reference``, else what differs (checked in a child: any backend)."""
    check = (
        "import sys, numpy as np, keras, trainways.model\n"
        "from helpers import read_history, load_weights\n"
        "run, ref, best = sys.argv[1], sys.argv[2], sys.argv[3] == '1'\n"
        "from pathlib import Path\n"
        "run, ref = Path(run), Path(ref)\n"
        "assert read_history(run) == read_history(ref), 'history.csv'\n"
        "for a, b in zip(load_weights(run), load_weights(ref), strict=True):\n"
        "    np.testing.assert_array_equal(a, b)\n"
        "if best:\n"
        "    load = lambda p: keras.models.load_model(p / 'best.keras', compile=False)\n"
        "    for a, b in zip(load(run).get_weights(), load(ref).get_weights(), strict=True):\n"
        "        np.testing.assert_array_equal(a, b)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check, str(run), str(reference), "1" if best else "0"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])},
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if result.returncode == 0 else result.stderr.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="fit,batch,loop")
    parser.add_argument("--backends", default="tensorflow")
    parser.add_argument("--loop", action="store_true", help="sweep a Loop script too")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--moments", default="", help="only these, comma-separated")
    args = parser.parse_args(argv)

    from kill_at import timeline

    from helpers import train_args, write_corpus

    root = Path(tempfile.mkdtemp(prefix="kill-sweep-"))
    (root / "sgml").mkdir()
    corpus = write_corpus(root / "sgml", wires_per_topic=40)
    cases = []  # (name, first command, resume command, env, moments, best)
    for backend in args.backends.split(","):
        env = {"KERAS_BACKEND": backend, "TRAINWAYS_CACHE_DIR": str(root / "cache")}
        options = ["--max-len", "60", "--deterministic", "--backend", backend]
        options += ["--steps-per-execution", "4"] if backend != "torch" else []
        for method in args.methods.split(","):

            def first(out, method=method, options=options):
                return ["cli", *train_args(corpus, out, method, EPOCHS, *options)]

            def again(out):
                return ["cli", "train", "--resume", str(out), "--quiet"]

            cases.append((f"{backend} {method}", first, again, env, timeline(EPOCHS, best=True)))
    if args.loop:
        env = {"TRAINWAYS_CACHE_DIR": str(root / "cache")}

        def loop_script(out):
            return ["example", "tutorial_gradient_tape", "--data", str(corpus), "--epochs",
                    str(EPOCHS), "--max-len", "60", "--seed", "5", "--out", str(out),
                    "--deterministic"]  # fmt: skip

        cases.append(("Loop script", loop_script, loop_script, env, timeline(EPOCHS, best=False)))

    def sweep_one(case, moment):
        name, first, again, env, _ = case
        out = root / name.replace(" ", "-") / moment.replace(":", "-")
        killed = _child(first(out), env, moment)
        if killed != -9:
            return f"{name} at {moment}: not killed (exit {killed})"
        if _child(again(out), env) != 0:
            return f"{name} at {moment}: the resume failed"
        differs = _same(out, root / name.replace(" ", "-") / "unbroken", best="Loop" not in name)
        return f"{name} at {moment}: {'differs: ' + differs if differs else 'same'}"

    failures = 0
    with ThreadPoolExecutor(args.jobs) as pool:
        for case in cases:
            name, first, _, env, _ = case
            reference = root / name.replace(" ", "-") / "unbroken"
            if _child(first(reference), env) != 0:
                print(f"{name}: the unbroken run failed")
                failures += 1
        only = set(filter(None, args.moments.split(",")))
        jobs = [
            pool.submit(sweep_one, case, moment)
            for case in cases
            for moment in case[4]
            if not only or moment in only
        ]
        for job in jobs:
            line = job.result()
            failures += not line.endswith(": same")
            print(line, flush=True)
    shutil.rmtree(root, ignore_errors=True)
    print(f"{len(jobs) - failures} of {len(jobs)} kills resumed to the unbroken run")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
