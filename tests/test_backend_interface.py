"""Backends of one shape: every backend folder has the same files and offers every name of
``trainways.backends.INTERFACE``, and no backend's file copies another's code (shared code lives
once, in ``trainways.backends.common``).

The checks read the folders' sources (no framework needed); the running backend's module is also
imported and every name resolved.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import keras
import pytest

from trainways import backends

ROOT = Path(backends.__file__).parent
# An identical body of at least this many lines, in two backends' folders, is a copy.
COPIED_BODY_LINES = 3
# As many identical code lines in a row, in two backends' folders, are a copy (the house rule:
# six similar lines in two places).
COPIED_RUN_LINES = 6


def _bound_names(path: Path) -> set[str]:
    """The names a module binds at its top level: defs, classes, assignments, imports."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def missing_names(folder: Path) -> list[str]:
    """The names of ``INTERFACE`` a backend folder does not offer: bound neither by its
    ``__init__`` nor, for a name of ``LAZY``, by the file ``LAZY`` says holds it."""
    eager = _bound_names(folder / "__init__.py")
    missing = []
    for name in backends.INTERFACE:
        if name in eager:
            continue
        lazy = folder / f"{backends.LAZY.get(name, '')}.py"
        if name not in backends.LAZY or not lazy.is_file() or name not in _bound_names(lazy):
            missing.append(name)
    return missing


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant)


def _bodies(path: Path) -> Iterator[tuple[str, str, int]]:
    """``(qualified name, normalized body, lines)`` of every function and class in ``path``:
    the body's AST without its docstring, line numbers left out."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = [s for i, s in enumerate(node.body) if not (i == 0 and _is_docstring(s))]
            if body:
                lines = sum(s.end_lineno - s.lineno + 1 for s in body)
                yield node.name, "\n".join(ast.dump(s) for s in body), lines


def _code_lines(path: Path) -> list[tuple[str, int]]:
    """``path``'s code lines, stripped: no blank line, comment, docstring or import."""
    source = path.read_text()
    skipped: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            skipped.update(range(node.lineno, node.end_lineno + 1))
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and _is_docstring(body[0]):
            skipped.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = []
    for number, line in enumerate(source.splitlines(), 1):
        code = line.split("#")[0].strip()
        if code and number not in skipped:
            lines.append((code, number))
    return lines


def _owner(path: Path, folders: dict[str, Path]) -> str:
    return next(name for name, folder in folders.items() if folder in path.parents)


def copies(folders: dict[str, Path], shared: list[Path]) -> list[str]:
    """Code found in two places among the backend ``folders`` (and the ``shared`` files): an
    identical function or class body of ``COPIED_BODY_LINES`` lines or more, or
    ``COPIED_RUN_LINES`` identical code lines in a row."""
    owners = {**{p: "shared" for p in shared}}
    for name, folder in folders.items():
        owners.update({p: name for p in sorted(folder.glob("*.py"))})
    seen: dict[str, list[str]] = {}
    runs: dict[tuple[str, ...], list[str]] = {}
    for path, owner in owners.items():
        where = f"{owner}/{path.name}"
        for qualname, body, lines in _bodies(path):
            if lines >= COPIED_BODY_LINES:
                seen.setdefault(body, []).append((owner, f"{where}:{qualname}"))
        lines = _code_lines(path)
        for i in range(len(lines) - COPIED_RUN_LINES + 1):
            run = tuple(code for code, _ in lines[i : i + COPIED_RUN_LINES])
            runs.setdefault(run, []).append((owner, f"{where}:{lines[i][1]}"))
    found = []
    for kind, table in (("body", seen), ("lines", runs)):
        for places in table.values():
            if len({owner for owner, _ in places}) > 1:
                found.append(f"{kind}: {', '.join(place for _, place in places)}")
    return found


def _folders() -> dict[str, Path]:
    return {name: ROOT / name for name in backends.SUPPORTED}


# --------------------------------------------------------------------------- the backends


@pytest.mark.parametrize("name", backends.SUPPORTED)
def test_every_backend_folder_has_the_same_files(name):
    files = sorted(p.name for p in (ROOT / name).glob("*.py"))
    assert files == sorted(backends.FILES), name


@pytest.mark.parametrize("name", backends.SUPPORTED)
def test_every_backend_offers_every_name_of_the_interface(name):
    assert missing_names(ROOT / name) == [], name


@pytest.mark.parametrize("name", backends.SUPPORTED)
def test_a_backend_package_imports_no_keras_and_exports_the_interface(name):
    # select() imports the package's environment before Keras: the package must not import it.
    assert "from trainways.backends import INTERFACE" in (ROOT / name / "__init__.py").read_text()
    module = importlib.import_module(f"trainways.backends.{name}")
    assert sorted(module.__all__) == sorted(backends.INTERFACE)
    for file in backends.FILES:
        tree = ast.parse((ROOT / name / file).read_text())
        if file in ("__init__.py", "environment.py"):
            imported = {
                alias.name.split(".")[0]
                for node in tree.body
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names
            } | {
                node.module.split(".")[0]
                for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module
            }
            assert not imported & {"keras", "tensorflow", "jax", "torch"}, f"{name}/{file}"


def test_the_running_backend_resolves_every_name():
    module = backends.current()
    assert module.__name__ == f"trainways.backends.{keras.backend.backend()}"
    for name in backends.INTERFACE:
        assert getattr(module, name) is not None, name


def test_the_interface_functions_take_the_same_arguments_on_every_backend():
    signatures: dict[str, dict[str, list[str]]] = {}
    for backend, folder in _folders().items():
        for file in backends.FILES:
            for node in ast.parse((folder / file).read_text()).body:
                if isinstance(node, ast.FunctionDef) and node.name in backends.INTERFACE:
                    arguments = [a.arg for a in node.args.args + node.args.kwonlyargs]
                    signatures.setdefault(node.name, {})[backend] = arguments
    assert {"prepare", "compile_step", "check_training", "jit_compile"} <= set(signatures)
    for name, by_backend in signatures.items():
        assert len({tuple(arguments) for arguments in by_backend.values()}) == 1, (name, by_backend)


def test_no_backend_copies_another_ones_code():
    assert copies(_folders(), [ROOT / "common.py"]) == []


# --------------------------------------------------------------------------- the checks catch


def _backend(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


COPIED = """
def helper(values):
    total = 0
    for value in values:
        total += value
    return total
"""


def test_the_copy_check_catches_a_copied_function_and_a_copied_run_of_lines(tmp_path):
    one = _backend(tmp_path / "one", {"a.py": COPIED})
    other = _backend(tmp_path / "other", {"b.py": COPIED.replace("helper", "renamed")})
    found = copies({"one": one, "other": other}, [])
    assert any(line.startswith("body: ") and "one/a.py:helper" in line for line in found), found
    run = "\n".join(f"x{i} = compute({i})" for i in range(COPIED_RUN_LINES))
    (one / "a.py").write_text(run)
    (other / "b.py").write_text("y = 1\n" + run)
    found = copies({"one": one, "other": other}, [])
    assert any(line.startswith("lines: ") for line in found), found
    (other / "b.py").write_text("y = 1\n" + run.replace("x2", "z2"))
    assert copies({"one": one, "other": other}, []) == []


def test_the_interface_check_catches_a_missing_name(tmp_path):
    names = [n for n in backends.INTERFACE if n not in backends.LAZY]
    init = "".join(f"{name} = None\n" for name in names[1:])
    files = {"__init__.py": init}
    for name, file in backends.LAZY.items():
        files[f"{file}.py"] = files.get(f"{file}.py", "") + f"def {name}(): pass\n"
    files["optimizers.py"] = files["optimizers.py"].replace("def XlaNadam", "def Other")
    folder = _backend(tmp_path / "broken", files)
    order = list(backends.INTERFACE)
    assert missing_names(folder) == sorted([names[0], "XlaNadam"], key=order.index)


def test_importing_the_backends_interface_starts_no_keras_in_a_fresh_process():
    import subprocess

    code = (
        "import sys; import trainways.backends as b\n"
        "for n in b.SUPPORTED: __import__('trainways.backends.' + n)\n"
        "import trainways.backends.common\n"
        "print('keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_nothing_below_the_run_looks_the_backend_up():
    # The run layer calls backends.current() and passes the module down (as Keras's own base
    # trainer never imports a backend): the trainers, the steps and the model take it.
    package = ROOT.parent
    below = [
        *sorted((package / "trainers").glob("*.py")),
        package / "steps.py",
        package / "model.py",
    ]
    below += [p for p in sorted(ROOT.rglob("*.py")) if p != ROOT / "__init__.py"]
    for path in below:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "trainways.backends":
                assert "current" not in {a.name for a in node.names}, path
            if isinstance(node, ast.Attribute) and node.attr == "current":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "backends"), path
