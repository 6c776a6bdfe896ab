"""The trainways cache of SGML builds, so that only the first load pays for a build.

A build is stored as a plain ``.npz`` (no object arrays, hence no pickle) in
:func:`default_cache_dir`, keyed by the builder version and the SGML files' names, sizes and
mtimes, and written atomically. A damaged cache file is rebuilt, an unwritable cache directory
only costs the caching, and :func:`_latest_cache` finds the most recent build for a load given
no source.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from trainways.data.errors import _HINT, DataError
from trainways.data.sgml import Corpus, _sgml_files, build_from_sgml
from trainways.files import write_atomic

ENV_CACHE = "TRAINWAYS_CACHE_DIR"

# Bump when the build output could change; it is part of the cache key. 2: a file cut
# mid-wire is refused, so a build cached from one before that must not be served.
BUILDER_VERSION = 2
# Bump when the layout of the cached .npz changes.
CACHE_FORMAT = 1
_CACHE_GLOB = "reuters-sgml-*.npz"


# ------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """``$TRAINWAYS_CACHE_DIR``, else ``$XDG_CACHE_HOME/trainways``, else ``~/.cache/trainways``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "trainways"


def _cache_key(files: Sequence[Path]) -> str:
    lines = [f"builder {BUILDER_VERSION}"]
    for path in files:
        try:
            st = path.stat()
        except OSError as exc:
            raise DataError(f"cannot stat {path} ({exc.strerror or exc}): {_HINT}") from exc
        lines.append(f"{path.name}\t{st.st_size}\t{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:24]


def _write_cache(corpus: Corpus, directory: Path, path: Path) -> None:
    """Write atomically so a crash or a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    words = sorted(corpus.word_index, key=corpus.word_index.__getitem__)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        format_version=np.int64(CACHE_FORMAT),
        builder_version=np.int64(BUILDER_VERSION),
        tokens=corpus.tokens.astype(np.int32, copy=False),
        offsets=corpus.offsets.astype(np.int64, copy=False),
        labels=corpus.labels.astype(np.int32, copy=False),
        topics=np.array(corpus.topics, dtype=str),
        words=np.array(words, dtype=str),
        source_dir=np.array(str(directory)),
    )
    write_atomic(path, buffer.getvalue())


def _is_cache_npz(names: Iterable[str]) -> bool:
    return {"format_version.npy", "tokens.npy", "offsets.npy"} <= set(names)


def _read_cache(path: Path) -> Corpus:
    """Read one of our cache files (also usable as an explicit ``source``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format_version"]) != CACHE_FORMAT:
                raise DataError(
                    f"{path} is a trainways cache of format {int(z['format_version'])}, "
                    f"expected {CACHE_FORMAT}: delete it and rebuild from the SGML"
                )
            tokens = z["tokens"]
            offsets = z["offsets"]
            labels = z["labels"]
            topics = tuple(z["topics"].tolist())
            words = z["words"].tolist()
            source_dir = str(z["source_dir"])
    except DataError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"corrupt trainways cache {path} ({exc}): delete it to rebuild") from exc
    word_index = {w: i for i, w in enumerate(words, start=1)}
    source = f"cache {path} (built from Reuters-21578 SGML at {source_dir})"
    return Corpus(tokens, offsets, labels, topics, word_index, source)


def _load_sgml_cached(directory: Path, cache_dir: Path) -> Corpus:
    files = _sgml_files(directory)
    cache_path = cache_dir / f"reuters-sgml-{_cache_key(files)}.npz"
    if cache_path.is_file():
        try:
            corpus = _read_cache(cache_path)
        except DataError:
            pass  # a damaged cache is rebuilt below and overwritten
        else:
            source = f"Reuters-21578 SGML at {directory} (from cache {cache_path})"
            return _replace_source(corpus, source)
    started = time.perf_counter()
    corpus = _build_from_sgml(directory)
    seconds = time.perf_counter() - started
    try:
        _write_cache(corpus, directory, cache_path)
        where = f"cached at {cache_path}"
    except OSError as exc:
        # Caching is an optimisation: an unwritable cache dir must not stop training.
        where = f"not cached: {exc.strerror or exc}"
    return _replace_source(
        corpus, f"Reuters-21578 SGML at {directory} (built in {seconds:.1f} s, {where})"
    )


# Indirection so tests can count builds.
_build_from_sgml = build_from_sgml


def _replace_source(corpus: Corpus, source: str) -> Corpus:
    return Corpus(
        corpus.tokens, corpus.offsets, corpus.labels, corpus.topics, corpus.word_index, source
    )


def _latest_cache(cache_dir: Path) -> Corpus | None:
    try:
        candidates = sorted(
            cache_dir.glob(_CACHE_GLOB), key=lambda p: p.stat().st_mtime_ns, reverse=True
        )
    except OSError:
        return None
    for path in candidates:
        try:
            return _read_cache(path)
        except DataError:
            continue
    return None
