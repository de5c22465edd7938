"""Ages as bands: numeric ages and DICOM age strings ("045Y", "006M") in years, and the bands they fall in.

The data sources bin DICOM ages as they read them (an exact age is identifying above 89), and the subgroup
analysis bins numeric age attributes with the same bands (``--age-bins``).
"""
from __future__ import annotations

import re

import numpy as np

from medrep.errors import MedrepError, Param

UNKNOWN = ""  # an item whose attribute is not known belongs to no subgroup
DECADES = tuple(float(a) for a in range(10, 100, 10))  # default age-bin edges: 0–9, 10–19, …, 90+

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([YMWD]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def age_in_years(value: str) -> float | None:
    """A numeric age ("63", "63.5") or a DICOM age string ("045Y", "006M") in years; None when not an age."""
    m = _AGE.match(str(value))
    if not m:
        return None
    return float(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()]


def age_band(value: str, edges: tuple[float, ...]) -> str:
    """The band of one age at ``edges``: "<10", "10-19" … ">=90"; UNKNOWN when ``value`` is not an age."""
    years = age_in_years(value)
    if years is None:
        return UNKNOWN
    k = int(np.searchsorted(edges, years, side="right"))
    if k == 0:
        return f"<{edges[0]:g}"
    if k == len(edges):
        return f">={edges[-1]:g}"
    lo, hi = edges[k - 1], edges[k]
    return f"{lo:g}-{hi - 1:g}" if float(lo).is_integer() and float(hi).is_integer() else f"[{lo:g}, {hi:g})"


def bin_ages(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Numeric ages → bands "<10", "10-19" … ">=90" at ``edges``; unknown or unreadable ages → UNKNOWN."""
    return np.array([age_band(v, edges) for v in values], dtype=object)


def parse_age_bins(text: str, where: str = Param("age_bins")) -> tuple[float, ...]:
    """"18,40,65" → (18.0, 40.0, 65.0); anything but strictly increasing numbers is refused, naming ``where``."""
    try:
        edges = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise MedrepError(f"expected numbers separated by commas, got {text!r}", where=where) from None
    if not edges or list(edges) != sorted(set(edges)):
        raise MedrepError("age-bin edges must be increasing numbers", where=where)
    return edges
