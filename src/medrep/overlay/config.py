"""What a text-overlay test computes: :class:`OverlayConfig` (see :mod:`medrep.configs` for how its fields become
flags of ``medrep overlay`` and keys of the audit's ``analyses.overlay`` section)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from medrep.configs import setting

DEFAULT_PROMPT = "a medical image showing {label}"


@dataclass(frozen=True)
class OverlayConfig:
    """The words, how they are written, and the probes that judge them.  The text encoder, a given zero-shot
    scorer and the cache are runtime arguments of :func:`medrep.overlay.run.run_overlay`."""

    words: tuple[str, ...] | None = setting(None, "words to write (default: the class names)")
    word_class: Mapping[str, str] | None = setting(None, "class a word stands for when it is not a class name")
    font: str | None = setting(None, "a .ttf file (default: DejaVu Sans, shipped with matplotlib)")
    font_size: float = setting(0.25, "share of the image height (≤ 1) or pixels (> 1)")
    position: str | tuple[float, float] = setting("center", "a named position or (x, y) fractions")
    colour: float | tuple[float, float, float] = setting(1.0, "grey level or (r, g, b) in [0, 1]")
    opacity: float = setting(1.0, "1 = opaque text")
    margin: float = setting(0.03, "gap between a word and the border, as a share of the image size")
    fit: bool = setting(True, "shrink a word that is wider than the image", flag="no-fit", negate=True)
    prompt: str = setting(DEFAULT_PROMPT, "zero-shot prompt template ({label} = class name)")
    # the audit gives the overlay test no separate text encoder (its `text` is the caption-alignment encoder)
    text_aligned: bool = setting(False, "the given text encoder shares the image models' embedding space", audit=False)
    train_split: str = setting("train", "split the probe and kNN are fitted on")
    test_split: str = setting("test", "split the words are written onto")
    limit: int | None = setting(None, "use at most N items of each split (seeded choice)")
    k: int = setting(20, "neighbours for the kNN classifier")
    n_boot: int = setting(1000, "bootstrap resamples for the 95% intervals")
    batch_size: int = setting(64, "images embedded together")
    seed: int = setting(0, "seed of the item choice, the probe and the bootstrap")

    def __post_init__(self) -> None:
        if self.words is not None:
            object.__setattr__(self, "words", tuple(self.words))
        for name in ("position", "colour"):  # a YAML list is a pair / a triple
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.word_class is not None:
            object.__setattr__(self, "word_class", dict(self.word_class))
