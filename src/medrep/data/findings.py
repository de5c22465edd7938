"""Multi-label findings: per-finding codes, the uncertain / blank policies, and the one-finding binary task.

A multi-label source stores, per image and finding, a code: 1 (positive), 0 (negative), −1 (uncertain, as
in CheXpert and MIMIC-CXR's labelers) or NaN (blank: the labeler said nothing).  The policy turns codes
into 1 / 0 / NaN (NaN = not used for that finding): ``uncertain=ones|zeros|ignore`` are the CheXpert paper's
U-Ones / U-Zeros / U-Ignore (default ignore: no label is invented), and blank counts as negative unless
``blank=ignore``.  ``?finding=NAME`` makes the binary task ``no NAME`` / ``NAME``; images whose code is
ignored for that finding are left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medrep.errors import MedrepError, Param, SpecError

UNCERTAIN_POLICIES = ("ones", "zeros", "ignore")
BLANK_POLICIES = ("negative", "ignore")
FINDING_OPTIONS = ("finding", "uncertain", "blank")

CODES = {"1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "-1": -1.0, "-1.0": -1.0, "": math.nan,
          "true": 1.0, "false": 0.0}


@dataclass(frozen=True)
class FindingPolicy:
    finding: str | None = None
    uncertain: str = "ignore"
    blank: str = "negative"

    def to_dict(self) -> dict:
        return {"finding": self.finding, "uncertain": self.uncertain, "blank": self.blank}


def take_finding_options(options: dict[str, str]) -> FindingPolicy:
    """Pop ``finding``, ``uncertain`` and ``blank`` from spec options."""
    finding = options.pop("finding", None)
    if finding is not None and not finding.strip():
        raise SpecError("finding needs a name, e.g. ?finding=Edema", where="?finding")
    uncertain = options.pop("uncertain", "ignore").strip().lower()
    if uncertain not in UNCERTAIN_POLICIES:
        raise SpecError(f"uncertain must be one of {', '.join(UNCERTAIN_POLICIES)}, got {uncertain!r}", where="?uncertain")
    blank = options.pop("blank", "negative").strip().lower()
    if blank not in BLANK_POLICIES:
        raise SpecError(f"blank must be one of {', '.join(BLANK_POLICIES)}, got {blank!r}", where="?blank")
    return FindingPolicy(finding.strip() if finding else None, uncertain, blank)


def parse_code(raw: str) -> float:
    """1 / 0 / −1 / NaN from a label cell; ValueError for anything else (the caller names the row)."""
    code = CODES.get(raw)
    if code is not None:
        return code
    code = CODES.get(raw.strip().lower())
    if code is None:
        raise ValueError(f"{raw!r} is not a finding label (expected 1, 0, -1 or blank)")
    return code


def apply_policy(codes: np.ndarray, policy: FindingPolicy) -> np.ndarray:
    """Codes (1, 0, −1, NaN) → 1 / 0 / NaN by the uncertain and blank policies (float32)."""
    out = np.array(codes, dtype=np.float32, copy=True)
    uncertain = out == -1
    blank = np.isnan(out)
    out[uncertain] = {"ones": 1.0, "zeros": 0.0, "ignore": np.nan}[policy.uncertain]
    out[blank] = 0.0 if policy.blank == "negative" else np.nan
    return out


def resolve_finding(name: str, findings: list[str], where: str) -> int:
    """Index of ``name`` among ``findings`` (exact, else case-insensitive); an unknown name lists the known ones."""
    if name in findings:
        return findings.index(name)
    folded = [f.lower() for f in findings]
    if name.lower() in folded:
        return folded.index(name.lower())
    raise SpecError(f"unknown finding {name!r} (known: {', '.join(findings)})", where=where)


def binary_classes(finding: str) -> list[str]:
    return [f"no {finding}", finding]


def finding_spelling(findings: list[str]) -> str:
    example = findings[0] if findings else "NAME"
    return f"?finding={example.replace(' ', '%20')}"


def require_single_label(dataset, where: str = Param("data")) -> None:
    """Commands that explain, attack or align one label refuse a multi-label set, naming the way out."""
    findings = list(getattr(dataset, "findings", None) or [])
    if findings:
        raise MedrepError(
            f"{getattr(dataset, 'name', 'the dataset')} is multi-label ({len(findings)} findings: {', '.join(findings)}); "
            f"this command needs one label: pick a finding, e.g. --data 'SPEC{finding_spelling(findings)}' "
            "(with &uncertain=ones|zeros|ignore and &blank=ignore as needed)", where=where)
