"""The error every data problem raises, and the hint its messages end with."""

from __future__ import annotations

_HINT = "point --data at the Reuters-21578 directory or a reuters.npz"


class DataError(ValueError):
    """Bad data or options; the one-line message names the bad value and what to do."""
