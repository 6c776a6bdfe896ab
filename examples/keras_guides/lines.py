"""Count the lines a trainways port changes in a Keras guide script, section by section.

Shared by ``benchmarks/guide_lines.py`` (the table in docs/keras-guides.md) and
``tests/test_keras_guides.py`` (the targets). A guide script and its port carry the same
``# %% <name>`` lines, one at the start of each of the guide's sections; the header (the module
docstring) and blank lines are not counted. Within a section, :mod:`difflib` matches the two
sides' lines with their indentation stripped: a line added, removed or replaced counts once (a
replaced line is not also counted as removed), and a line whose only change is its indentation is
counted apart, as re-indented.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

#: The line that opens a section: ``# %% <name>``.
MARKER = "# %%"
#: At most this many changed lines per training call in a "customizing fit" guide, the
#: ``import trainways`` line included.
FIT_TARGET = 3
#: At most this share of a training loop's lines changed in a "training loop" guide.
LOOP_TARGET = 0.10
#: The guides, each an ``<name>_keras.py`` original and an ``<name>_trainways.py`` port.
GUIDES = (
    "custom_train_step_in_tensorflow",
    "custom_train_step_in_jax",
    "custom_train_step_in_torch",
    "writing_a_custom_training_loop_in_tensorflow",
    "writing_a_custom_training_loop_in_jax",
    "writing_a_custom_training_loop_in_torch",
)
HERE = Path(__file__).resolve().parent
_FIT_CALL = re.compile(r"\.fit\(")


@dataclass(frozen=True)
class SectionCount:
    """What the port changed in one section of a guide.

    Attributes:
        name: The section's name (its ``# %%`` line).
        lines: Non-blank lines of the original's section (the marker excluded).
        changed: Lines added, removed or replaced (one per replaced line), indentation aside.
        reindented: Lines whose only change is their indentation.
        calls: ``.fit(`` calls in the original's section: a "customizing fit" training call.
    """

    name: str
    lines: int
    changed: int
    reindented: int
    calls: int


@dataclass(frozen=True)
class GuideCount:
    """A guide's count: its setup section (the imports), then one count per section."""

    guide: str
    sections: tuple[SectionCount, ...]

    @property
    def setup(self) -> SectionCount:
        """The first section: the imports, ``import trainways`` among them in the port."""
        return self.sections[0]

    def kind(self, section: SectionCount) -> str | None:
        """``"setup"``; ``"fit"`` (it has training calls); ``"loop"`` (the port changes it
        without a training call: a training loop); ``None`` (unchanged, trains nothing)."""
        if section is self.setup:
            return "setup"
        if section.calls:
            return "fit"
        return "loop" if section.changed or section.reindented else None

    def target(self, section: SectionCount) -> str:
        """The section's target, in words (``"-"``: none, the section trains nothing)."""
        if self.kind(section) == "fit":
            return f"<= {FIT_TARGET} per call, import included"
        if self.kind(section) == "loop":
            return f"<= {LOOP_TARGET:.0%} of {section.lines} lines"
        return "-"

    def per_call(self, section: SectionCount) -> float:
        """Changed lines per training call of ``section``, the setup's (the import) added."""
        return section.changed / section.calls + self.setup.changed

    def meets(self, section: SectionCount) -> bool | None:
        """Whether ``section`` meets its target (``None``: it has none)."""
        if self.kind(section) == "fit":
            return self.per_call(section) <= FIT_TARGET
        if self.kind(section) == "loop":
            return section.changed <= LOOP_TARGET * section.lines
        return None


def body(text: str) -> list[str]:
    """The script's lines after its header (the module docstring)."""
    lines = text.splitlines()
    tree = ast.parse(text)
    first = tree.body[0] if tree.body else None
    is_docstring = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    return lines[first.end_lineno :] if is_docstring else lines


def sections(text: str) -> list[tuple[str, list[str]]]:
    """``(name, lines)`` per ``# %%`` section after the header, the first one the setup.

    Raises:
        ValueError: Code precedes the first ``# %%`` line.
    """
    out: list[tuple[str, list[str]]] = []
    for line in body(text):
        if line.startswith(MARKER):
            out.append((line[len(MARKER) :].strip(), []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"{line.strip()!r} precedes the first {MARKER!r} line: move it below")
    return out


def compare(original: list[str], port: list[str]) -> tuple[int, int]:
    """``(changed, reindented)`` lines between two sections, blank lines ignored."""
    a = [line for line in original if line.strip()]
    b = [line for line in port if line.strip()]
    matcher = difflib.SequenceMatcher(
        a=[line.strip() for line in a], b=[line.strip() for line in b], autojunk=False
    )
    changed = reindented = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs = zip(range(i1, i2), range(j1, j2), strict=True)
            reindented += sum(a[i] != b[j] for i, j in pairs)
        else:
            changed += max(i2 - i1, j2 - j1)
    return changed, reindented


def count(guide: str, directory: Path = HERE) -> GuideCount:
    """Count what ``<guide>_trainways.py`` changes in ``<guide>_keras.py``, section by section.

    Raises:
        ValueError: The two scripts do not have the same sections in the same order.
    """
    original = sections((directory / f"{guide}_keras.py").read_text())
    port = sections((directory / f"{guide}_trainways.py").read_text())
    names = [name for name, _ in original]
    if names != [name for name, _ in port]:
        raise ValueError(
            f"{guide}: the port's sections {[name for name, _ in port]} are not the original's "
            f"{names}: give both the same '# %%' lines"
        )
    counts = []
    for (name, ours), (_, theirs) in zip(original, port, strict=True):
        changed, reindented = compare(ours, theirs)
        lines = sum(1 for line in ours if line.strip())
        calls = sum(len(_FIT_CALL.findall(line)) for line in ours)
        counts.append(SectionCount(name, lines, changed, reindented, calls))
    return GuideCount(guide, tuple(counts))
