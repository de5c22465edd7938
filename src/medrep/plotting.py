"""matplotlib, set up once for the whole library: figures are only ever written to files."""
from __future__ import annotations

from typing import Any

_PYPLOT: Any = None


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only; never needs a display), imported on first use."""
    global _PYPLOT
    if _PYPLOT is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        _PYPLOT = plt
    return _PYPLOT
