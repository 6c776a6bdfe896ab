"""Lines the trainways ports change in Keras's guides on custom training, against the targets.

For each guide in examples/keras_guides/, counts what ``<guide>_trainways.py`` changes in
``<guide>_keras.py``, section by section (the ``# %%`` lines): lines added, removed or replaced
(a replaced line once), indentation-only changes apart, the header and blank lines not counted
(examples/keras_guides/lines.py, which tests/test_keras_guides.py asserts with). Targets (issue
26): at most 3 changed lines per training call in the "customizing fit" guides, ``import
trainways`` included; at most 10% of a loop's lines in the "training loop" guides. Prints a
Markdown table (docs/keras-guides.md has it); exits 1 if a target is missed.

    python benchmarks/guide_lines.py
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

GUIDE_DIR = Path(__file__).resolve().parents[1] / "examples" / "keras_guides"


def load_lines() -> Any:
    """examples/keras_guides/lines.py (the examples are not a package)."""
    spec = importlib.util.spec_from_file_location("keras_guides_lines", GUIDE_DIR / "lines.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def table(lines: Any) -> tuple[list[str], bool]:
    """The Markdown table's rows, and whether every target is met."""
    rows = [
        "| guide | section | kind | lines | changed | re-indented | per call | target | met |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    all_met = True
    for guide in lines.GUIDES:
        count = lines.count(guide, GUIDE_DIR)
        for section in count.sections:
            kind = count.kind(section)
            if kind is None:
                continue  # unchanged, trains nothing
            met = count.meets(section)
            all_met = all_met and met is not False
            per_call = f"{count.per_call(section):g}" if kind == "fit" else ""
            verdict = {True: "yes", False: "**no**", None: ""}[met]
            rows.append(
                f"| {guide} | {section.name} | {kind} | {section.lines} | {section.changed} | "
                f"{section.reindented} | {per_call} | {count.target(section)} | {verdict} |"
            )
    return rows, all_met


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    rows, all_met = table(load_lines())
    print("\n".join(rows))
    print(f"\nevery target met: {'yes' if all_met else 'no'}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
