"""The text-overlay test: words written onto the images, and how far they move each model's representation
and answers (probe, kNN, zero-shot)."""
from medrep.overlay.config import OverlayConfig
from medrep.overlay.outputs import format_overlay_table, write_overlay_outputs
from medrep.overlay.render import OverlayDataset, TextOverlay, default_font
from medrep.overlay.result import OverlayResult
from medrep.overlay.run import run_overlay

__all__ = ["OverlayConfig", "OverlayDataset", "OverlayResult", "TextOverlay", "default_font", "format_overlay_table",
           "run_overlay", "write_overlay_outputs"]
