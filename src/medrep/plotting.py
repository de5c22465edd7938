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


#: PNG text key holding the height in the image's own pixels of its smallest row / axis label, so that a viewer
#: (the report's browser check) can tell how large the labels appear once the image is scaled to fit a page
LABEL_PX_KEY = "medrep:label-px"


def label_px_metadata(labels: Any, dpi: float) -> dict[str, str]:
    """``savefig(metadata=...)`` for a PNG whose labels are the given matplotlib Text objects, saved at ``dpi``:
    the smallest non-empty label's font size in image pixels (points × dpi / 72)."""
    sizes = [t.get_fontsize() for t in labels if t.get_text().strip()]
    return {LABEL_PX_KEY: f"{min(sizes) * dpi / 72:.2f}"} if sizes else {}


def mark_labels(fig: Any, labels: Any, dpi: float | None = None) -> None:
    """Record on ``fig`` its labels' smallest size (see :func:`label_px_metadata`) for a saver that only gets the
    figure: it passes ``metadata=png_metadata(fig)`` to ``savefig``."""
    fig.medrep_png_metadata = label_px_metadata(labels, dpi or fig.dpi)


def png_metadata(fig: Any) -> dict[str, str] | None:
    return getattr(fig, "medrep_png_metadata", None)
