"""Safety: code-running pickles, output paths, YAML python tags.

tests/models/test_checkpoints.py::test_code_running_pickle_is_refused_and_never_executed covers the
library loaders (load_state_dict, bare checkpoint paths, timm's ``@weights``) with a payload that opens
a file; here the same refusal through the `medrep` command, with an ``os.system`` payload, in both
torch serialisation formats.
"""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medrep.errors import MedrepError
from medrep.io import safe_output_path

ARCH = "vit_tiny_patch16_224"
OPTS = "img_size=32&patch_size=8&depth=2&num_classes=3"


class _ShellPayload:
    """Unpickling this runs ``touch MARKER`` through os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("spec", ["{path}?arch=timm:{arch}&{opts}", "timm:{arch}@{path}?{opts}"], ids=["path", "timm"])
def test_code_running_checkpoint_is_refused_by_the_command(cli, tmp_path, capsys, zipfile, spec):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"blocks.0.norm1.weight": torch.ones(192), "payload": _ShellPayload(marker)}, path,
               _use_new_zipfile_serialization=zipfile)
    model = spec.format(path=path, arch=ARCH, opts=OPTS)
    rc = cli.in_process(["extract", "--model", model, "--data", cli.DATA, "--out", str(tmp_path / "out"),
                         "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(path) in err and "refused" in err and "Traceback" not in err
    assert not marker.exists()


# -- output paths ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x.json", "a/../../x.json", "/etc/passwd", "a/b/../../../x", "..", "link/x.png"])
def test_output_names_that_escape_are_refused(tmp_path, name):
    root = tmp_path / "out"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)  # a link inside the output directory that points out of it
    with pytest.raises(MedrepError, match="escapes the output directory") as info:
        safe_output_path(root, name)
    assert info.value.where == name


@pytest.mark.parametrize("name", ["results.json", "a/b/c.png", "a/../b.csv", "./x", "..hidden", "x..y"])
def test_output_names_inside_are_kept(tmp_path, name):
    got = safe_output_path(tmp_path, name)
    assert got == (tmp_path / name).resolve() and tmp_path.resolve() in got.parents


@settings(max_examples=50, deadline=None)
@given(parts=st.lists(st.sampled_from(["..", ".", "a", "b", "", "/", "~", "..a", "\\..", "%2e%2e"]), min_size=1, max_size=6))
def test_no_output_name_lands_outside(tmp_path_factory, parts):
    root = tmp_path_factory.getbasetemp() / "safe-root"
    root.mkdir(exist_ok=True)
    name = "/".join(parts)
    try:
        got = safe_output_path(root, name)
    except MedrepError:
        return
    assert got == root.resolve() or root.resolve() in got.parents


# -- YAML configs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:os.system ['touch {marker}']",
    "!!python/name:os.system",
    "!!python/module:os",
    "{{x: !!python/object/apply:subprocess.check_output [['touch', '{marker}']]}}",
])
def test_yaml_python_tags_are_refused(cli, tmp_path, capsys, payload):
    from medrep.audit.config import load_config

    marker = tmp_path / "pwned"
    path = tmp_path / "audit.yaml"
    path.write_text(f"title: t\nseed: {payload.format(marker=marker)}\n")
    with pytest.raises(MedrepError) as info:
        load_config(path)
    assert info.value.where == str(path)
    capsys.readouterr()
    assert cli.in_process(["audit", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert str(path) in capsys.readouterr().err
    assert not marker.exists()
