"""What every per-family test module checks: every analysis runs through the command line without a traceback,
attention sites are the transformer blocks, and method support is known before any work."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from medrep.cli import main


# 8 test and 16 train phantoms at 32 px: enough for every analysis, fast on two cores.
DATA = "demo?n_train=16&n_val=0&n_test=8&size=32"
QUIET = ["--quiet", "--batch-size", "8"]


def run_command(capsys, *args: str) -> str:
    """Run one medrep command in-process; it must succeed and print no traceback."""
    code = main([*args, *QUIET])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 0, f"{args[0]} exited {code}: {text[-2000:]}"
    assert "Traceback" not in text, text[-2000:]
    return text


def run_every_analysis(spec: str, out: Path, capsys, text: str | None = None, explain_target: str = "auto") -> dict:
    """extract, attack (2 steps), explain (every method the model supports), features, align (zero-shot through
    MiniLM) and, with ``text``, zero-shot through that text tower.  Returns each command's results.json."""
    results = {}
    run_command(capsys, "extract", "--model", spec, "--data", DATA, "--split", "test", "--out", str(out / "extract"))
    run_command(capsys, "attack", "--model", spec, "--data", DATA, "--limit", "4", "--attack-steps", "2", "--eps", "4/255",
                "--noise-sigma", "0.01", "--noise-draws", "2", "--out", str(out / "attack"))
    run_command(capsys, "explain", "--model", spec, "--data", DATA, "--limit", "4", "--explain-target", explain_target,
                "--deletion-steps", "2", "--ig-steps", "2", "--out", str(out / "explain"))
    run_command(capsys, "features", "--model", spec, "--data", DATA, "--k", "3", "--shots", "1", "--draws", "1",
                "--permutations", "0", "--projection", "none", "--n-boot", "20", "--out", str(out / "features"))
    run_command(capsys, "align", "--source", spec, "--text", "minilm", "--data", DATA, "--anchors", "8", "--n-boot", "20",
                "--out", str(out / "align"))
    if text is not None:
        run_command(capsys, "align", "--source", spec, "--text", text, "--data", DATA, "--anchors", "8", "--n-boot", "20",
                    "--out", str(out / "zero-shot"))
    for name in ("attack", "explain", "features", "align", "zero-shot"):
        path = out / name / "results.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    return results


def check_structure(spec: str, blocks: int, lrp: bool, capsys, tmp_path: Path) -> None:
    """Attention sites are the transformer blocks only; Grad-CAM's default layer sits in the last block and gives
    tokens; chefer-lrp's support is known before any work, and an explicit request it cannot serve is refused
    (exit 2, one line naming the families it supports) before anything is computed."""
    from medrep.explain.attention import find_attention_sites
    from medrep.explain.methods import default_gradcam_layer, unsupported_reason
    from medrep.models import load_encoder

    encoder = load_encoder(spec)
    sites = find_attention_sites(encoder)
    assert len(sites) == blocks, [s.name for s in sites]
    last_block = sites[-1].name.rsplit(".", 1)[0]
    assert default_gradcam_layer(encoder).startswith(last_block + ".")
    grid = encoder.token_grid
    with torch.no_grad():
        tokens = encoder.forward_layer(encoder.preprocess(torch.rand(1, 3, 32, 32)), default_gradcam_layer(encoder))
    assert tokens.shape[1] == grid.num_prefix_tokens + grid.num_patches
    reason = unsupported_reason(encoder, "chefer-lrp")
    assert (reason is None) == lrp, reason
    if not lrp:
        out = tmp_path / "refused"
        code = main(["explain", "--model", spec, "--data", DATA, "--methods", "chefer-lrp", "--explain-target", "embedding", "--limit", "2",
                     "--out", str(out),
                     "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert "timm VisionTransformer-style" in err and "BiomedCLIP" in err
        assert not (out / "partial").exists()


def explained_methods(results: dict) -> tuple[list[str], dict]:
    """(methods explain ran, {left-out method: why}) from explain's results.json."""
    return results["explain"]["methods"], results["explain"]["settings"].get("skipped_methods", {})
