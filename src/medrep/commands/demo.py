"""`medrep demo`: the main job on the embedded default (phantoms, demo-vit, demo-cnn, minilm).

Runs the full audit (`medrep audit`) with the built-in default configuration when the audit is
available; the foundation part — phantoms, both demo models, cached extraction and a printed summary
of their accuracies — is what every later analysis builds on.
"""
from __future__ import annotations

import argparse

NAME = "demo"
HELP = "run the audit on the embedded default: lesion phantoms, demo-vit, demo-cnn and minilm"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue an interrupted audit in the same --out")
    p.add_argument("--out", default="demo-out", help="output directory (default: demo-out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="smaller settings (fewer attack pairs and explanation images)")


def run(args: argparse.Namespace) -> int:
    from medrep.commands.common import out_dir

    out = out_dir(args.out)
    try:
        from medrep.audit import default_config, run_audit
    except ModuleNotFoundError as err:
        if err.name != "medrep.audit":
            raise
        return _summary(args, out)
    run_audit(default_config(seed=args.seed, fast=args.fast), out, cache_dir=args.cache_dir, use_cache=not args.no_cache,
              device=args.device, resume=args.resume)
    return 0


def _summary(args: argparse.Namespace, out) -> int:
    """Phantoms → both demo models → cached embeddings → head and kNN accuracy, printed and saved."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    from medrep.commands.common import load_model, make_cache
    from medrep.data import load_dataset
    from medrep.features.extract import extract_embeddings
    from medrep.manifest import build_manifest, write_manifest
    from medrep.results import bootstrap_metric
    from medrep.io import write_json_atomic

    data = load_dataset("demo")
    train, test = data.split("train"), data.split("test")
    cache = make_cache(args)
    rows, keys = {}, {}
    for spec in ("demo-vit", "demo-cnn"):
        enc = load_model(spec, args)
        e_train = extract_embeddings(enc, train, cache=cache, description=f"{spec} train")
        e_test = extract_embeddings(enc, test, cache=cache, description=f"{spec} test")
        logits = _head_logits(enc, test)
        head_ok = (logits.argmax(1) == test.labels).astype(float)
        knn = KNeighborsClassifier(n_neighbors=10, metric="cosine").fit(e_train.vectors, e_train.labels)
        knn_ok = (knn.predict(e_test.vectors) == e_test.labels).astype(float)
        rows[spec] = {"head_accuracy": bootstrap_metric(head_ok, seed=args.seed).to_dict(),
                      "knn_accuracy": bootstrap_metric(knn_ok, seed=args.seed).to_dict(),
                      "embedding_dim": int(e_test.vectors.shape[1])}
        keys[f"{spec}/train"], keys[f"{spec}/test"] = e_train.key, e_test.key
    write_json_atomic(out / "results.json", {"schema_version": "1.0", "kind": "demo-summary", "models": rows})
    write_manifest(out, build_manifest("demo", {"out": str(out)}, seeds={"seed": args.seed}, cache_keys=keys,
                                       data=data.describe()))
    print(f"phantoms: train {len(train)}, test {len(test)} (classes: {', '.join(data.classes)})")
    for spec, r in rows.items():
        h, k = r["head_accuracy"], r["knn_accuracy"]
        print(f"{spec:9s} head accuracy {h['value']:.3f} [{h['low']:.3f}, {h['high']:.3f}]   "
              f"kNN accuracy {k['value']:.3f} [{k['low']:.3f}, {k['high']:.3f}]   (dim {r['embedding_dim']})")
    print(f"wrote {out / 'results.json'}")
    return 0


def _head_logits(encoder, dataset, batch_size: int = 128):
    import numpy as np
    import torch

    from medrep.data.base import collate

    out = []
    with torch.inference_mode():
        for i in range(0, len(dataset), batch_size):
            batch = collate([dataset[j] for j in range(i, min(len(dataset), i + batch_size))])
            out.append(encoder.logits(batch["image"].to(encoder.device)).float().cpu().numpy())
    return np.concatenate(out)
