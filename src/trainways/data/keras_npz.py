"""Keras's own ``reuters.npz``: read it safely, find it in Keras's cache, or download it.

Its sequences are a pickled object array, read with an unpickler that accepts only the globals
needed to rebuild numpy arrays, so a tampered file cannot run code. The topic names are copied
from Keras, so that reading the npz imports neither TensorFlow nor Keras; only the download
(through ``keras.utils.get_file``) does, lazily.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pickle
import socket
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trainways.data.cache import _is_cache_npz, _read_cache
from trainways.data.errors import _HINT, DataError
from trainways.data.sgml import Corpus

# What keras.datasets.reuters.get_label_names() returns, copied so that loading a Keras
# npz does not import TensorFlow; a test checks it against Keras.
KERAS_LABEL_NAMES: tuple[str, ...] = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing",
    "money-supply", "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass",
    "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum",
    "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi",
    "iron-steel", "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem",
    "dlr", "gas", "silver", "wpi", "hog", "lead",
)  # fmt: skip

_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_KERAS_NPZ_SHA256 = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
_KERAS_WORD_INDEX_MD5 = "4d44cc38712099c9e383dc6e5f11a921"
_DOWNLOAD_TIMEOUT_S = 5.0


# ---------------------------------------------------------------------- Keras npz files

# The only globals needed to rebuild numpy object arrays; same list as Keras 3's
# keras/src/datasets/npz_utils.py. Anything else in a pickle (os.system, eval, ...) is
# refused, so a tampered npz cannot run code.
_ALLOWED_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")


def _read_npy(fp: io.BytesIO) -> np.ndarray:
    try:
        return np.lib.format.read_array(fp, allow_pickle=False)
    except ValueError:
        # Only object arrays get here: skip the header and unpickle under restriction.
        fp.seek(0)
        version = np.lib.format.read_magic(fp)
        if version[0] == 1:
            np.lib.format.read_array_header_1_0(fp)
        elif version[0] in (2, 3):
            # Format 3 differs from 2 only in the header's text encoding.
            np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}") from None
        return _RestrictedUnpickler(fp).load()


def _load_npz_members(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as raw:
                    arrays[member[: -len(".npy")]] = _read_npy(io.BytesIO(raw.read()))
    return arrays


def _load_npz_file(path: Path, *, origin: str | None = None) -> Corpus:
    """Load a Keras-format ``reuters.npz`` (or one of our cache files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        hint = "point --data at its directory" if path.suffix == ".sgm" else _HINT
        raise DataError(f"{path} is not a .npz (zip) archive: {hint}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}): {_HINT}") from exc
    if _is_cache_npz(names):
        return _read_cache(path)
    try:
        arrays = _load_npz_members(path)
    except (pickle.UnpicklingError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"corrupt or unsafe .npz {path} ({exc}): {_HINT}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}): {_HINT}") from exc
    if "x" not in arrays or "y" not in arrays:
        raise DataError(
            f"{path} lacks the arrays 'x' and 'y' (has {sorted(arrays) or 'none'}): "
            f"it is not a Keras-format reuters.npz; {_HINT}"
        )
    xs, ys = arrays["x"], arrays["y"]
    try:
        lists = [list(map(int, seq)) for seq in xs]
        labels = np.asarray(ys, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path} has malformed 'x'/'y' arrays ({exc}): {_HINT}") from exc
    if len(lists) != len(labels) or not lists:
        raise DataError(f"{path} has {len(lists)} sequences but {len(labels)} labels: {_HINT}")
    if labels.min() < 0 or labels.max() >= len(KERAS_LABEL_NAMES):
        raise DataError(
            f"{path} has labels outside 0..{len(KERAS_LABEL_NAMES) - 1} "
            f"(min {labels.min()}, max {labels.max()}): {_HINT}"
        )
    word_index_path = path.with_name("reuters_word_index.json")
    try:
        word_index = json.loads(word_index_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(
            f"{word_index_path} not found: put Keras's reuters_word_index.json beside {path}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read word index {word_index_path} ({exc}): replace it with Keras's "
            "reuters_word_index.json"
        ) from exc
    if not isinstance(word_index, dict):
        raise DataError(f"{word_index_path} is not a JSON object: replace it with Keras's")
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.fromiter(
        itertools.chain.from_iterable(lists), dtype=np.int64, count=int(offsets[-1])
    )
    words = {str(k): int(v) for k, v in word_index.items()}
    source = origin or f"Keras reuters.npz at {path}"
    return Corpus(tokens, offsets, labels, KERAS_LABEL_NAMES, words, source)


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def _keras_cached_npz() -> Path | None:
    bases = [_keras_home()]
    if not os.access(bases[0], os.W_OK):
        # Where keras.utils.get_file puts downloads when the Keras home is read-only.
        bases.append(Path(tempfile.gettempdir()) / ".keras")
    for base in bases:
        candidate = base / "datasets" / "reuters.npz"
        if candidate.is_file():
            return candidate
    return None


def _download_keras_reuters() -> Path:
    """Fetch Keras's reuters.npz and word index through ``keras.utils.get_file``.

    A short default socket timeout makes an offline machine fail in seconds; it is
    restored afterwards because it is process-wide.
    """
    from keras.utils import get_file  # lazy: pulls in TensorFlow

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        npz = get_file(
            "reuters.npz", origin=f"{_KERAS_ORIGIN}reuters.npz", file_hash=_KERAS_NPZ_SHA256
        )
        words = get_file(
            "reuters_word_index.json",
            origin=f"{_KERAS_ORIGIN}reuters_word_index.json",
            file_hash=_KERAS_WORD_INDEX_MD5,
        )
    finally:
        socket.setdefaulttimeout(previous)
    npz_path = Path(npz)
    if Path(words) != npz_path.with_name("reuters_word_index.json"):
        raise OSError(f"word index landed at {words}, not beside {npz_path}")
    return npz_path
