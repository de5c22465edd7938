"""Class prompts: the modality noun read off the captions, the default templates, a prompt file, and errors."""
from __future__ import annotations

import pytest

from medrep.align.text import class_prompts, modality_noun
from medrep.errors import MedrepError


def test_prompts_default_file_and_templates(tmp_path):
    caps = ["a radiograph showing a small smooth oval benign lesion in the centre", "a radiograph of normal tissue with no lesion"]
    assert modality_noun(caps) == "radiograph"
    p = class_prompts(["normal", "benign", "malignant"], caps)
    assert len(p["benign"]) == 4 and all(s.startswith("a radiograph") for s in p["malignant"])
    assert class_prompts(["pleural_effusion"], [], templates=["a {image} of {label}"]) == {"pleural_effusion": ["a medical image of pleural effusion"]}
    f = tmp_path / "prompts.json"
    f.write_text('{"a": "an a", "b": ["one b", "two b"]}')
    assert class_prompts(["a", "b"], prompts=str(f)) == {"a": ["an a"], "b": ["one b", "two b"]}
    with pytest.raises(MedrepError, match=r"prompts.json: no prompts for class\(es\) c"):
        class_prompts(["a", "b", "c"], prompts=str(f))
    with pytest.raises(MedrepError, match="^prompt: "):
        class_prompts(["a"], templates=["no placeholder"])
