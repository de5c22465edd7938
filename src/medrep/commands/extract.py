"""`medrep extract`: embeddings.parquet + manifest.json, served from the content-addressed cache."""
from __future__ import annotations

import argparse

from medrep.commands.common import (add_backend_arguments, add_data_arguments, arguments_of, load_all_data, load_model,
                                   make_backend, make_cache, note_skipped, out_dir, pick_data)

NAME = "extract"
HELP = "embed a dataset with a model (cached) and write embeddings.parquet"
# Shown at the end of --help; each runs as it is on the embedded default (a test runs them).
EXAMPLES = (
    "medrep extract --model demo-vit --limit 32 --out out/extract",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model spec: demo-vit, demo-cnn, timm:NAME, hf:ID_OR_DIR, open_clip:ARCH[@WEIGHTS], a checkpoint path")
    add_data_arguments(p)
    p.add_argument("--layer", default=None, help="module name to embed at (default: the model's representation)")
    p.add_argument("--pool", default=None, choices=["cls", "mean"], help="pooling (default: the model's own)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="compute dtype of the model")
    p.add_argument("--compile", action="store_true",
                   help="run the embedding call through torch.compile (same embeddings within float tolerance; "
                        "pays a one-off compile, see benchmarks/RESULTS.md for when it is faster)")
    p.add_argument("--workers", type=int, default=None, help="data-loading worker processes (default: none for in-memory data, else one)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow Hugging Face models that ship their own code")
    p.add_argument("--chunk-size", type=int, default=1024,
                   help="items per cache chunk: an interrupted run loses at most one chunk of work")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (finished chunks are always reused from the cache)")
    p.add_argument("--out", required=True, help="output directory")
    add_backend_arguments(p)


def run(args: argparse.Namespace) -> int:
    from medrep.data.base import SkipLog
    from medrep.features.extract import extract_embeddings
    from medrep.manifest import build_manifest, write_manifest

    if args.chunk_size < 1:
        from medrep.errors import MedrepError

        raise MedrepError("must be at least 1", where="--chunk-size")
    backend = make_backend(args)
    out = out_dir(args.out)
    skipped = SkipLog()
    full, items_seen = load_all_data(args, skipped)
    data = pick_data(full, args)
    encoder = load_model(args.model, args)
    if args.compile:
        from medrep.embeddings.extract import check_compile_available

        check_compile_available("--compile")
    encoder.compile_extraction = args.compile
    emb = extract_embeddings(encoder, data, layer=args.layer, pool=args.pool, batch_size=args.batch_size,
                             cache=make_cache(args), chunk_size=args.chunk_size, num_workers=args.workers, dtype=args.dtype,
                             skipped=skipped if args.skip_bad else None, backend=backend)
    emb.check_finite()
    emb.to_parquet(out / "embeddings.parquet")
    write_manifest(out, build_manifest(
        "extract", arguments_of(args), seeds={"limit": args.seed}, cache_keys={encoder.name: emb.key},
        skipped=skipped.skipped, encoder=encoder.describe(), data=data.describe(),
        output={"file": "embeddings.parquet", "rows": len(emb), "dim": int(emb.vectors.shape[-1]), "from_cache": emb.meta.get("from_cache")}))
    print(f"wrote {len(emb)} embeddings of width {emb.vectors.shape[-1]} to {out / 'embeddings.parquet'}"
          + (" (from cache)" if emb.meta.get("from_cache") else ""))
    note_skipped(skipped, items_seen)
    return 0
