"""Where a word can be written: the named positions and the PIL text anchor each one uses (horizontal l/m/r,
vertical t = top, m = middle, d = descender).  Any other place is an (x, y) pair of fractions."""
from __future__ import annotations

from medrep.registry import Registry

POSITIONS = Registry("text position", param="position")
for _name, _anchor in {"center": "mm", "top-left": "lt", "top-right": "rt", "bottom-left": "ld", "bottom-right": "rd",
                       "top": "mt", "bottom": "md"}.items():
    POSITIONS.register(_name, _anchor)
