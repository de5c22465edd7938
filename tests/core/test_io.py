"""One slug for output file names; two names never share a file."""
from __future__ import annotations

from medrep.io import slug


def test_safe_names_stay_as_they_are():
    assert slug("demo-vit") == "demo-vit" and slug("model_1.v2") == "model_1.v2"


def test_names_that_look_alike_after_cleaning_stay_apart():
    names = ["a/b", "a_b", "a:b", "a b", "timm:vit_tiny?depth=2", "timm:vit_tiny?depth=4", "x" * 80, "x" * 81]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(names)
    assert slugs[1] == "a_b" and slugs[0].startswith("a_b-") and len(slugs[0]) == len("a_b-") + 8
    assert all(len(s) <= 60 and "/" not in s and ":" not in s for s in slugs)
    assert slug("a/b") == slug("a/b")  # stable: the same name gives the same file in every run
