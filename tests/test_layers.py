"""The package's layers, read from its imports: every import goes to the same layer or one
below, and no modules import each other in a circle.

The layers are written down once, here and in docs/design.md ("Layers"); a module that is not
in the table fails the test, so a new module has to be given its place. Imports inside functions
count as much as those at the top: a lazy import may save start-up time, never dodge a layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "trainways"

# Bottom to top. A key names a module or a package (all its modules).
LAYERS: dict[str, int] = {
    # 0 foundation: the configuration, why runs stop, writing files, child processes
    "trainways.config": 0,
    "trainways.stops": 0,
    "trainways.files": 0,
    "trainways.children": 0,
    # 1 formats and pure logic
    "trainways.rundir": 1,
    "trainways.data": 1,
    "trainways.data.sources": 1,  # imports Keras, still below the training contract
    "trainways.summary": 1,
    "trainways.agreement": 1,
    # 2 the training contract: the user's step, the three methods (given the backend)
    "trainways.steps": 2,
    "trainways.trainers": 2,
    # 3 one sibling per Keras backend
    "trainways.backends": 3,
    # 4 what a run is made of
    "trainways.model": 4,
    "trainways.callbacks": 4,
    "trainways.checkpoint": 4,
    "trainways.tracking": 4,
    "trainways.baseline": 4,
    "trainways.user_data": 4,
    # 5 a run's parts: what it trains, its pre-flight, its life cycle, its reports
    "trainways.training": 5,
    "trainways.preflight": 5,
    "trainways.lifecycle": 5,
    "trainways.report": 5,
    # 6 the ways in: a CLI run, the library call, a user's own loop, inference
    "trainways.run": 6,
    "trainways.api": 6,
    "trainways.own_loop": 6,
    "trainways.inference": 6,
    # 7 what runs several trainings or serves one
    "trainways.measure": 7,
    "trainways.compare": 7,
    "trainways.export": 7,
    # 8 the command line, and the package's front door
    "trainways.quiet": 8,
    "trainways.parser": 8,
    "trainways.cli": 8,
    "trainways": 8,
    "trainways.__main__": 8,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _layer(module: str) -> int | None:
    while module:
        if module in LAYERS:
            return LAYERS[module]
        if "." not in module:
            return None
        module = module.rsplit(".", 1)[0]
    return None


def _resolve(name: str) -> str:
    """The package module ``name`` imports: itself if it is one, else the module holding it."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> set[str]:
    """The package modules ``module`` imports, anywhere in its file."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            # `from trainways import rundir` imports the module trainways.rundir; `from
            # trainways.config import RunConfig` a name of the module trainways.config.
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            names = [name for name in submodules if name in MODULES] or [base]
        else:
            continue
        found.update(_resolve(name) for name in names if name.startswith("trainways"))
    found.discard(module)
    return {name for name in found if name in MODULES}


GRAPH = {module: _imports(module) for module in MODULES}


def test_every_module_has_a_layer():
    assert [module for module in MODULES if _layer(module) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_or_below(module):
    upward = {
        target: _layer(target)
        for target in GRAPH[module]
        if (_layer(target) or 0) > (_layer(module) or 0)
    }
    assert upward == {}, f"{module} (layer {_layer(module)}) imports from above: {upward}"


def test_no_modules_import_each_other_in_a_circle():
    # Imports of a package's __init__ by its own modules (the package's names) do not make a
    # circle of files; every other edge counts.
    def edges(module: str) -> set[str]:
        return {t for t in GRAPH[module] if not module.startswith(f"{t}.")}

    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges(module)):
            if state.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert circles == []


def test_the_check_sees_an_upward_import():
    # The reader must find the imports it is meant to forbid: a lazy import inside a function.
    assert "trainways.preflight" in GRAPH["trainways.inference"]
    assert _layer("trainways.inference") > _layer("trainways.preflight")
    assert _layer("trainways.data.loading") == 1 and _layer("trainways.backends.jax.loop") == 3
