"""Files a person reads: results.json, one CSV of per-item values per ε, accuracy-vs-ε and galleries."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from medrep.io import atomic_write, write_csv_atomic, write_json_atomic
from medrep.robustness.result import AttackResult


def _eps_tag(eps: float, norm: str = "linf") -> str:
    if norm != "linf":  # an L2 ε is a distance over all pixels, not a share of the pixel range
        return f"{eps:g}"
    return f"{eps * 255:.3g}-255".replace(".", "p")


def eps_label(eps: float, norm: str = "linf") -> str:
    """ε as it was written: an L∞ ε that is a whole number of 1/255 steps as k/255, any other as its decimal
    (0.0157 stays 0.0157, not 4.0035/255); an L2 ε in raw [0, 1] pixel units."""
    steps = eps * 255
    if norm == "linf" and abs(steps - round(steps)) < 1e-6 * max(1.0, steps):
        return f"{round(steps)}/255"
    return f"{eps:g}"


def format_eps(eps: float, norm: str) -> str:
    """ε as people write it: L∞ in 1/255 of the pixel range (or as the decimal given), L2 in raw [0, 1] pixel units."""
    return f"ε = {eps_label(eps, norm)}" if norm == "linf" else f"{norm.upper()} ε = {eps:g}"


def attack_lines(result: AttackResult) -> list[str]:
    """One line per ε when several attacks ran: each attack's attacked accuracy beside the worst case's, the wins,
    the passes, and the gradient-masking verdict; with bfloat16 autocast, the float32 accuracy beside it."""
    lines = []
    norm = result.config["norm"]
    for s in result.summaries:
        att = s.get("attacks") or {}
        per = att.get("per_attack") or {}
        pct = lambda m: f"{m['value']:.1%}" if m.get("value") is not None else "-"  # noqa: E731
        head = f"{format_eps(s['eps'], norm)}:"
        if len(per) > 1:
            parts = ", ".join(f"{a} {pct(v['attacked_accuracy'])}" for a, v in per.items())
            wins = ", ".join(f"{a} {n}" for a, n in att.get("wins", {}).items())
            lines.append(f"{head} attacked accuracy {parts}; worst case per item {pct(att['worst_case_attacked_accuracy'])} "
                         f"(items won: {wins}; unbroken {att.get('unbroken')})")
        if "gradient_masking_suspected" in att:
            lines.append(f"{head} " + ("GRADIENT MASKING SUSPECTED: the black-box Square attack beat every gradient attack "
                                       f"({att['square_only_breaks']} items broken by Square alone)"
                                       if att["gradient_masking_suspected"] else
                                       "no sign of gradient masking (Square did not beat the gradient attacks)"))
        if "float32_reference" in att:
            ref = att["float32_reference"]
            lines.append(f"{head} {ref['attack']} under bfloat16 autocast {pct(ref['autocast_attacked_accuracy'])}, "
                         f"in float32 {pct(ref['attacked_accuracy'])}")
        passes = ", ".join(f"{a} {v['passes'].get('gradient', 0):,} forward+backward + {v['passes'].get('forward', 0):,} "
                           f"forward" for a, v in per.items() if v.get("passes"))
        if passes and (len(per) > 1 or result.config.get("early_stop")):
            lines.append(f"{head} items through the network: {passes}")
    return lines


def write_attack_outputs(result: AttackResult, out_dir: str | Path, amplify: float | None = None,
                         figures: bool = True) -> dict[str, Path]:
    """Write everything; returns {name: path} for the figures and tables (the HTML report links them).

    ``figures=False`` writes only results.json and the CSVs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"results": write_json_atomic(out / "results.json", result.to_dict())}
    norm = result.config["norm"]
    for r in result.per_eps:
        tag = _eps_tag(r.eps, norm)
        paths[f"per_item_{tag}"] = _write_csv(result, r, out / f"per_item_eps{tag}.csv")
    if not figures:
        return paths
    paths["accuracy_vs_eps"] = plot_accuracy_vs_eps(result, out / "accuracy_vs_eps.png")
    paths["loss_per_step"] = plot_loss(result, out / "loss_per_step.png")
    if result.gallery_source is not None:
        for r in result.per_eps:
            tag = _eps_tag(r.eps, norm)
            paths[f"gallery_{tag}"] = plot_gallery(result, r, out / f"gallery_eps{tag}.png", amplify)
    return paths


def _write_csv(result: AttackResult, r, path: Path) -> Path:
    return write_csv_atomic(path, ["source_id", "target_id", *r.columns],
                            ([sid, tid or "", *[_fmt(v) for v in row]]
                             for sid, tid, row in zip(result.source_ids, result.target_ids, r.values)))


def _fmt(v: float) -> str:
    if np.isnan(v):
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def plot_accuracy_vs_eps(result: AttackResult, path: Path) -> Path:
    from medrep.plotting import pyplot

    plt = pyplot()

    cfg = result.config
    if cfg["norm"] == "linf":
        xs, xlabel = [s["eps_255"] for s in result.summaries], f"ε ({cfg['norm']}, in 1/255 of the pixel range)"
    else:
        xs, xlabel = [s["eps"] for s in result.summaries], f"ε ({cfg['norm'].upper()}, pixel units in [0, 1])"
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for k, name in enumerate(result.classifiers):
        color = f"C{k}"
        rows = [s["classifiers"][name] for s in result.summaries]
        for key, style, label in (("attacked_accuracy", "-o", "attacked"), ("match_success_rate", ":s", "match (target label)")):
            vals = [r[key]["value"] for r in rows]
            if any(v is None for v in vals):
                continue
            lo = [r[key]["value"] - r[key]["low"] for r in rows]
            hi = [r[key]["high"] - r[key]["value"] for r in rows]
            ax.errorbar(xs, vals, yerr=[lo, hi], fmt=style, color=color, capsize=3, label=f"{name}: {label}")
        ax.axhline(rows[0]["clean_accuracy"]["value"], color=color, ls="--", lw=1, label=f"{name}: clean")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of items")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{cfg['objective']} attack on {result.model['name']} ({cfg['steps']} steps, n={result.data['n']})", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_loss(result: AttackResult, path: Path) -> Path:
    from medrep.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=120)
    for s in result.summaries:
        norm = result.config["norm"]
        ax.plot(s["loss_per_step"], label=format_eps(s["eps"], norm))
    ax.set_xlabel("step")
    ax.set_ylabel("mean loss (minimised)")
    ax.set_title(f"{result.config['objective']}: mean objective per step", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_gallery(result: AttackResult, r, path: Path, amplify: float | None = None) -> Path:
    """Rows: items; columns: original, perturbed, amplified difference, target (when there is one).

    Drawn as one montage image (a single ``imshow``): a grid of subplots costs seconds per figure.
    """
    from medrep.plotting import pyplot

    plt = pyplot()

    src, adv, tgt = result.gallery_source, r.gallery_adv, result.gallery_target
    k = len(adv)
    amp, largest = gallery_amplification(src[:k], adv, amplify)
    columns = [src, adv, np.clip(0.5 + amp * (adv - src[:k]), 0, 1)] + ([tgt[:k]] if tgt is not None else [])
    heads = ["original", "perturbed", f"difference ×{amp:.3g}", "target"][:len(columns)]
    c, h, w = src.shape[1:]
    pad = max(2, h // 16)
    grid = np.ones((k * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), dtype=np.float32)
    for i in range(k):
        for j, col in enumerate(columns):
            tile = np.transpose(col[i], (1, 2, 0))
            tile = np.repeat(tile, 3, axis=2) if c == 1 else tile
            y0, x0 = pad + i * (h + pad), pad + j * (w + pad)
            grid[y0:y0 + h, x0:x0 + w] = tile
    classes = result.data.get("classes") or []
    name = lambda v: classes[v] if 0 <= v < len(classes) else str(v)  # noqa: E731
    lab = r.column("label")[:k].astype(int)
    pred = r.column(f"{result.primary}_attacked_pred")[:k].astype(int)
    tlab = r.column("target_label")[:k]
    scale = 1.6 / max(h, w)
    fig = plt.figure(figsize=(grid.shape[1] * scale + 1.6, grid.shape[0] * scale + 0.6), dpi=110)
    ax = fig.add_axes([0.2, 0.02, 0.78, 0.88])
    ax.imshow(grid, interpolation="nearest")
    # 8 pt at 110 dpi: labels 12 px high in the PNG, legible in the report at its natural size
    ax.set_xticks([pad + j * (w + pad) + w / 2 for j in range(len(columns))], heads, fontsize=8)
    ax.xaxis.tick_top()
    labels = [f"{name(lab[i])} → {name(pred[i])}" + (f"\n(target {name(int(tlab[i]))})" if tgt is not None else "")
              for i in range(k)]
    ax.set_yticks([pad + i * (h + pad) + h / 2 for i in range(k)], labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    norm = result.config["norm"]
    how = "as asked" if amplify is not None else f"largest pixel change ±{largest:.3g} → black / white"
    fig.suptitle(f"{result.config['objective']}, {format_eps(r.eps, norm)}{f' ({norm})' if norm == 'linf' else ''}; "
                 f"rows: true → {result.primary} label after the attack\n"
                 f"difference = 0.5 + {amp:.3g} × (perturbed − original) ({how})", fontsize=8)
    from medrep.plotting import mark_labels

    mark_labels(fig, [*ax.get_xticklabels(), *ax.get_yticklabels()])
    return _save(fig, path)


def gallery_amplification(src: np.ndarray, adv: np.ndarray, amplify: float | None = None) -> tuple[float, float]:
    """(factor, largest per-pixel change): by default the largest change shown maps to the full grey range.

    Taken from the pixels, not from ε: an L2 ε bounds the change over all pixels, so each pixel moves far less.
    """
    largest = float(np.abs(adv - src).max()) if adv.size else 0.0
    if amplify is not None:
        return float(amplify), largest
    return (0.5 / largest if largest > 0 else 1.0), largest


def _save(fig, path: Path) -> Path:
    from medrep.plotting import pyplot

    plt = pyplot()

    from medrep.plotting import png_metadata

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", metadata=png_metadata(fig)))
    finally:
        plt.close(fig)
