"""--skip-bad, command by command: every command that takes it lists what it left out in manifest.json and
says so in one console line; the commands that cannot skip (every model must see the same items) refuse
it; the commands without data options do not have it.  The list of commands comes from the CLI's own
registry, so a new command is checked too."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

N_GOOD = 11


@pytest.fixture(scope="module")
def bad_masks(tmp_path_factory):
    """A CSV manifest of 13 images with lesion masks: one mask of the wrong shape, one holding NaN."""
    root = tmp_path_factory.mktemp("skip-bad")
    rng = np.random.default_rng(4)
    rows = ["path,label,mask"]
    for i in range(N_GOOD + 2):
        (root / "img").mkdir(exist_ok=True)
        (root / "mask").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        mask = np.zeros((32, 32), np.float32)
        mask[4 + i % 8 : 14 + i % 8, 6:18] = 1
        if i == 3:
            mask = mask[:16]  # wrong shape
        if i == 8:
            mask[0, 0] = np.nan
        np.save(root / "mask" / f"{i}.npy", mask)
        rows.append(f"img/{i}.png,{'lesion' if i % 2 else 'normal'},mask/{i}.npy")
    csv = root / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def command_args(cli, name, data, out):
    common = ["--data", str(data), "--out", str(out), "--no-cache", "--quiet", "--batch-size", "4"]
    return {
        "extract": ["extract", "--model", cli.TINY, "--split", "all", *common],
        # the head must fit the data's two classes for --classifiers head (a 3-output head is refused before any item)
        "attack": ["attack", "--model", cli.TINY.replace("num_classes=3", "num_classes=2"), "--split", "all", "--objective", "push", "--eps", "4/255", "--attack-steps", "1",
                   "--noise-draws", "1", "--noise-sigma", "0.02", "--classifiers", "head", *common],
        "explain": ["explain", "--model", cli.TINY, "--split", "all", "--methods", "gradcam", "--metrics", "pointing",
                    "--no-baselines", *common],
        "align": ["align", "--source", cli.TINY, "--target", cli.TINY, "--split", "all", "--anchors", "4", "--n-boot", "10",
                  *common],
        "features": ["features", "--model", cli.TINY, "--projection", "none", *common],
        "overlay": ["overlay", "--model", cli.TINY, "--words", "x", *common],
    }[name]


def _registry():
    from medrep.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    return {name: p for name, p in sub.choices.items()}


SKIPPING = ["extract", "attack", "explain", "align"]
REFUSING = ["features", "overlay"]


def test_every_command_is_covered():
    with_flag = {n for n, p in _registry().items() if any("--skip-bad" in a.option_strings for a in p._actions)}
    assert with_flag == set(SKIPPING) | set(REFUSING)


@pytest.mark.parametrize("name", SKIPPING)
def test_skipped_items_are_in_the_manifest_and_on_the_console(cli, bad_masks, tmp_path, capsys, name):
    out = tmp_path / "out"
    assert cli.in_process(command_args(cli, name, bad_masks, out) + ["--skip-bad"]) == 0
    skipped = json.loads((out / "manifest.json").read_text())["skipped"]
    assert [s["item"] for s in skipped] == [f"{bad_masks} row 5", f"{bad_masks} row 10"]
    assert "mask shape" in skipped[0]["problem"] and "NaN" in skipped[1]["problem"]
    err = capsys.readouterr().err
    assert "skipped 2 of 13 items: see manifest.json" in err.splitlines()


@pytest.mark.parametrize("name", SKIPPING)
def test_without_skip_bad_the_first_bad_item_stops_the_run(cli, bad_masks, tmp_path, capsys, name):
    assert cli.in_process(command_args(cli, name, bad_masks, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    [error] = [line for line in err.splitlines() if line.startswith(f"medrep {name}: error: ")]  # one line
    assert (f"{bad_masks} row 5" in error or f"{bad_masks} row 10" in error) and "Traceback" not in err


@pytest.mark.parametrize("name", REFUSING)
def test_commands_that_cannot_skip_refuse_the_flag(cli, bad_masks, tmp_path, capsys, name):
    assert cli.in_process(command_args(cli, name, bad_masks, tmp_path / "out") + ["--skip-bad"]) == 2
    err = capsys.readouterr().err
    [error] = [line for line in err.splitlines() if line.startswith(f"medrep {name}: error: ")]
    assert "--skip-bad" in error and "not supported" in error and "Traceback" not in err
