"""`medrep audit`: one dataset, several models, the four analyses, one shared embedding cache, one report.

Each stage is a call into the analysis packages (robustness, explain, features, align) followed by their
own writers; this module only orders the stages, shares encoders and the cache between them, turns
their result objects into report sections and a scorecard, and keeps going when one stage fails (the
failure is shown in its section; everything already computed stays on disk).
"""
from __future__ import annotations

import csv
import itertools
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from medrep.audit.config import validate_config
from medrep.errors import MedrepError
from medrep.io import atomic_write, write_json_atomic
from medrep.manifest import build_manifest, write_manifest
from medrep.progress import is_quiet
from medrep.report import Figure, Section, Table, write_report
from medrep.results import RESULTS_SCHEMA_VERSION

ATTENTION_METHODS = {"attention", "rollout", "chefer", "chefer-lrp"}
_FMT = lambda m: "–" if not m or m.get("value") is None else f"{m['value']:.3f}"  # noqa: E731


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def _log(msg: str) -> None:
    if not is_quiet():
        from rich.console import Console

        Console(stderr=True).print(f"[bold blue]audit[/] {msg}")


class Audit:
    def __init__(self, config: dict[str, Any], out: Path, cache, device: str):
        self.config, self.out, self.cache, self.device = config, out, cache, device
        self.results: dict[str, Any] = {}
        self.sections: list[Section] = []
        self.scorecard: dict[str, dict[str, Any]] = {}
        self.timings: dict[str, float] = {}
        self._encoders: dict[str, Any] = {}
        self._text = None

    # -- shared inputs ---------------------------------------------------------------------------
    def load(self) -> None:
        from medrep.commands.common import resolve_device
        from medrep.data import load_dataset
        from medrep.models import load_encoder

        self.dataset = load_dataset(self.config["data"])
        for split in (self.config["train_split"], self.config["test_split"]):
            if split not in self.dataset.splits:
                raise MedrepError(f"the data has no {split!r} split (available: {', '.join(self.dataset.splits) or 'none'})",
                                  where="train_split/test_split")
        self.train = self.dataset.split(self.config["train_split"])
        self.test = self.dataset.split(self.config["test_split"])
        device = resolve_device(self.device)
        for spec in self.config["models"]:
            self._encoders[spec] = load_encoder(spec).to(device)
            self.scorecard[spec] = {"model": spec}

    @property
    def text_encoder(self):
        if self._text is None and self.config["text"]:
            from medrep.models import load_text_encoder

            self._text = load_text_encoder(self.config["text"])
        return self._text

    def stage(self, key: str, title: str, fn: Callable[[Path], Section]) -> None:
        """Run one analysis; a failure becomes an error section and the audit goes on."""
        stage_dir = self.out / key
        _log(f"{title} …")
        t0 = time.time()
        try:
            section = fn(stage_dir)
        except MedrepError as err:
            section = Section(key, title, error=str(err))
            self.results[key] = {"error": str(err)}
        except Exception as err:  # noqa: BLE001 - a bug in one analysis must not lose the others
            section = Section(key, title, error=f"{type(err).__name__}: {err}")
            self.results[key] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=8)}
        self.timings[key] = round(time.time() - t0, 1)
        self.sections.append(section)
        _log(f"{title}: {'failed: ' + section.error if section.error else 'done'} ({self.timings[key]} s)")

    def models_for(self, analysis: str) -> list[str]:
        return self.config["analyses"][analysis].get("models") or self.config["models"]

    # -- the four questions ----------------------------------------------------------------------
    def robustness(self, out: Path) -> Section:
        from medrep.robustness.outputs import write_attack_outputs
        from medrep.robustness.runner import run_attack

        cfg = self.config["analyses"]["robustness"]
        test = self.test.limit(cfg["limit"], seed=self.config["seed"]) if cfg["limit"] else self.test
        figures, tables, res, readings = [], [], {}, []
        for spec in self.models_for("robustness"):
            for objective in cfg["objectives"]:
                enc = self._encoders[spec]
                result = run_attack(enc, test, self.train, objective=objective, eps=cfg["eps"], norm=cfg["norm"],
                                    steps=cfg["steps"], step_size=cfg["step_size"], random_start=cfg["random_start"],
                                    target=cfg["target"], batch_size=min(self.config["batch_size"], 32),
                                    seed=self.config["seed"], cache=self.cache, gallery_size=4, n_boot=500)
                d = out / f"{_safe(spec)}-{objective}"
                paths = write_attack_outputs(result, d)
                res.setdefault(spec, {})[objective] = result.to_dict()
                rows = []
                for s in result.summaries:
                    m = s["metrics"]
                    rows.append({"ε (×1/255)": s["eps_255"], "clean accuracy": m["clean_accuracy"],
                                 "attacked accuracy": m["attacked_accuracy"],
                                 **({"match success": m["match_success_rate"], "cos to target before": m["cosine_to_target_before"],
                                     "cos to target after": m["cosine_to_target_after"]} if objective == "collide" else
                                    {"relative change": m["relative_change"]}),
                                 "PSNR (dB)": m["psnr_mean"], "SSIM": m["ssim_mean"], "noise-check AUC (best σ)": max(s["detector"]["by_sigma"], key=lambda d: d["roc_auc"]["value"] or 0.0)["roc_auc"]})
                tables.append(Table(f"{spec} — {objective} ({cfg['norm']}, {cfg['steps']} steps, classifier: {result.primary})", rows))
                figures.append(Figure(paths["accuracy_vs_eps"], f"{spec}, {objective}: accuracy under attack vs ε"))
                gal = [k for k in paths if k.startswith("gallery_")]
                if gal:
                    figures.append(Figure(paths[gal[-1]], f"{spec}, {objective}: original / perturbed / amplified difference"
                                          + (" / target" if objective == "collide" else "")))
                last = result.summaries[-1]
                if objective == "collide" or "robustness" not in self.scorecard[spec]:
                    self.scorecard[spec]["robustness"] = {
                        "text": f"{_FMT(last['metrics']['clean_accuracy'])} → {_FMT(last['metrics']['attacked_accuracy'])} "
                                f"({objective}, ε={last['eps_255']:g}/255)", "metric": last["metrics"]["attacked_accuracy"]}
                readings.append(
                    f"{spec}, {objective}: accuracy {_FMT(last['metrics']['clean_accuracy'])} on clean images falls to "
                    f"{_FMT(last['metrics']['attacked_accuracy'])} at ε = {last['eps_255']:g}/255 while the images stay at "
                    f"PSNR {_FMT(last['metrics']['psnr_mean'])} dB / SSIM {_FMT(last['metrics']['ssim_mean'])}"
                    + (f"; {_FMT(last['metrics']['match_success_rate'])} of attacked images are classified as the target's class."
                       if objective == "collide" else "."))
        self.results["robustness"] = res
        reading = ("Imperceptible pixel changes (bounded by ε in raw [0, 1] pixel units, the model's normalisation inside the "
                   "graph) move each model's representation: 'collide' pushes an image's embedding onto an image of another "
                   "class, 'push' drives it away from where it was. A large accuracy drop at PSNR above ~35 dB means the "
                   "representation is not semantically stable.\n\n" + "\n\n".join(readings))
        return Section("robustness", "1 · Robustness of the representation", reading, figures, tables)

    def explain(self, out: Path) -> Section:
        from medrep.explain.run import run_explain, write_explain_outputs

        cfg = self.config["analyses"]["explain"]
        figures, tables, res, readings = [], [], {}, []
        for spec in self.models_for("explain"):
            enc = self._encoders[spec]
            methods = [m for m in cfg["methods"] if enc.token_grid is not None or m not in ATTENTION_METHODS]
            result = run_explain(enc, self.test, methods=methods, metrics=cfg["metrics"], target=cfg["target"],
                                 limit=cfg["limit"], seed=self.config["seed"], steps=cfg["steps"], cache=self.cache,
                                 gallery_size=4, n_boot=500)
            d = out / _safe(spec)
            paths = write_explain_outputs(result, d)
            rd = result.to_dict()
            res[spec] = rd
            keys = rd["metric_names"]
            tables.append(Table(f"{spec} — explanation scores on {rd['n_images']} lesion images (mean [95% CI])",
                                [{"method": m, **{k: rd["metrics"][m][k] for k in keys}} for m in rd["methods"]],
                                note="random and center are baselines; higher is better except deletion AUC."))
            if "gallery" in paths:
                figures.append(Figure(paths["gallery"], f"{spec}: image, lesion outline and each method's map"))
            pointing = {m: rd["metrics"][m].get("pointing", {}).get("value") for m in rd["methods"]}
            real = {m: v for m, v in pointing.items() if m not in rd["baselines"] and v is not None}
            if real:
                best = max(real, key=real.get)
                self.scorecard[spec]["explanations"] = {
                    "text": f"{best}: pointing {real[best]:.3f} (random {pointing.get('random') or float('nan'):.3f}, "
                            f"centre {pointing.get('center') or float('nan'):.3f})", "metric": rd["metrics"][best]["pointing"]}
                readings.append(f"{spec}: the best method on the pointing game is {best} ({real[best]:.3f}); the random map "
                                f"scores {pointing.get('random') or float('nan'):.3f} and the centre prior "
                                f"{pointing.get('center') or float('nan'):.3f}. A method is only informative where it beats both.")
        self.results["explain"] = res
        area = next(iter(res.values()), {}).get("mask_area", {})
        reading = ("Each method's map is scored against the pixel-exact lesion masks: the pointing game (is the map's maximum "
                   "inside the lesion), IoU of the top-k% pixels (enclosing-box mode as in the paper, and plain pixel IoU), the "
                   "share of map energy inside the mask, and faithfulness (deletion/insertion AUC of the target score)."
                   + (f" Lesions cover {area.get('mean', float('nan')):.1%} of the image on average, so a centre-biased map is "
                      "a real competitor." if isinstance(area.get("mean"), float) else "") + "\n\n" + "\n\n".join(readings))
        return Section("explain", "2 · Do the explanations point at the lesion?", reading, figures, tables)

    def features(self, out: Path) -> Section:
        from medrep.features.analysis import run_features, write_features_outputs

        cfg = self.config["analyses"]["features"]
        encs = [self._encoders[s] for s in self.config["models"]]
        result = run_features(encs, self.dataset, train_split=self.config["train_split"], test_split=self.config["test_split"],
                              limit=cfg["limit"], k=cfg["k"], shots=cfg["shots"], projections=cfg["projections"],
                              n_permutations=cfg["n_permutations"], batch_size=self.config["batch_size"], cache=self.cache,
                              seed=self.config["seed"])
        figs = write_features_outputs(result, out / "features")
        rd = result.to_dict()
        self.results["features"] = rd
        tables = [Table("Per model (test split; probes fitted on train)", rd["tables"]["models"])]
        if rd["tables"].get("pairs"):
            tables.append(Table("Between models", rd["tables"]["pairs"], note="p-values from a permutation null"))
        readings = []
        for spec in self.config["models"]:
            m = rd["models"].get(spec) or rd["models"].get(self._encoders[spec].name) or {}
            if m:
                self.scorecard[spec]["features"] = {"text": f"linear probe {_FMT(m.get('linear_probe_accuracy'))}, "
                                                            f"kNN {_FMT(m.get('knn_accuracy'))}", "metric": m.get("linear_probe_accuracy")}
                readings.append(f"{spec}: kNN accuracy {_FMT(m.get('knn_accuracy'))}, linear probe {_FMT(m.get('linear_probe_accuracy'))} "
                                f"(AUC {_FMT(m.get('linear_probe_auc'))}), silhouette {_FMT(m.get('silhouette'))}.")
        section = Section("features", "3 · Are the features discriminative?",
                          "Frozen embeddings from the shared cache: neighbours, linear and few-shot probes, cluster separability, "
                          "and similarity between the models (CKA and mutual kNN, each against a permutation null so that "
                          "high scores from model size alone are not read as agreement).\n\n" + "\n\n".join(readings),
                          [Figure(p, _caption(k)) for k, p in figs.items()], tables)
        if self.config["analyses"]["overlay"]["enabled"]:
            self._overlay(out / "overlay", section)
        return section

    def _overlay(self, out: Path, section: Section) -> None:
        from medrep.features.overlay import run_overlay, write_overlay_outputs

        cfg = self.config["analyses"]["overlay"]
        encs = [self._encoders[s] for s in self.config["models"]]
        result = run_overlay(encs, self.dataset, words=cfg["words"], size=cfg["size"], position=cfg["position"],
                             opacity=cfg["opacity"], limit=cfg["limit"], cache=self.cache, seed=self.config["seed"],
                             train_split=self.config["train_split"], test_split=self.config["test_split"])
        figs = write_overlay_outputs(result, out, dataset=self.test)
        rd = result.to_dict()
        self.results["overlay"] = rd
        section.tables.append(Table("Text-overlay test: class names written on the test images", result.table(),
                                    note="flip rate: share of predictions that change when the word is written on the image"))
        section.figures += [Figure(p, _caption(k)) for k, p in figs.items()]
        section.reading += ("\n\nText-overlay test: each class name is rendered onto the test images; the cosine shift of the "
                            "embedding and how often the clean-trained probe and kNN change their answer show whether written "
                            "text sways the model.")

    def alignment(self, out: Path) -> Section:
        from medrep.align.api import run_alignment, write_align_outputs

        cfg = self.config["analyses"]["alignment"]
        specs = self.config["models"]
        pairs = list(itertools.permutations(specs, 2)) if cfg["stitching"] and len(specs) > 1 else []
        jobs: list[tuple[str, str | None, bool]] = [(s, t, False) for s, t in pairs]
        if cfg["zero_shot"] and self.text_encoder is not None:
            jobs += [(s, None, True) for s in specs]
        if not jobs:
            raise MedrepError("nothing to align: give two models (stitching) or a text encoder (zero-shot)", where="analyses.alignment")
        figures, tables, res, readings = [], [], {}, []
        top = str(max(cfg["anchors"]))
        for src, tgt, text in jobs:
            result = run_alignment(self._encoders[src], self.dataset, target_encoder=self._encoders[tgt] if tgt else None,
                                   text_encoder=self.text_encoder if text else None, anchors=cfg["anchors"],
                                   estimator=cfg["estimator"], anchor_selection=cfg["anchor_selection"], seed=self.config["seed"],
                                   train_split=self.config["train_split"], eval_split=self.config["test_split"],
                                   batch_size=self.config["batch_size"], cache=self.cache)
            name = f"{src} → {tgt or self.text_encoder.name}"
            paths = write_align_outputs(result, out / _safe(name.replace(" → ", "-to-")))
            rd = result.to_dict()
            res[name] = rd
            tables.append(Table(name, [{"anchors": int(n), **ms} for n, ms in rd["by_anchors"].items()]))
            figures += [Figure(p, f"{name}: {_caption(k)}") for k, p in paths.items()]
            m = rd["by_anchors"].get(top, {})
            if text:
                self.scorecard[src]["zero-shot"] = {"text": f"{_FMT(m.get('zero_shot_accuracy'))} via {self.text_encoder.name} "
                                                            f"(naive {_FMT(m.get('zero_shot_naive_accuracy'))}, {top} anchors)",
                                                    "metric": m.get("zero_shot_accuracy")}
                readings.append(f"{name}: zero-shot accuracy {_FMT(m.get('zero_shot_accuracy'))} with {top} image–caption anchors "
                                f"(naive mapping {_FMT(m.get('zero_shot_naive_accuracy'))}, chance {_FMT(m.get('chance_accuracy'))}).")
            else:
                self.scorecard[src].setdefault("stitching", {"text": f"→ {tgt}: {_FMT(m.get('stitched_accuracy'))} "
                                                                     f"(target's own {_FMT(m.get('target_accuracy'))}, naive {_FMT(m.get('naive_accuracy'))})",
                                                             "metric": m.get("stitched_accuracy")})
                readings.append(f"{name}: stitched accuracy {_FMT(m.get('stitched_accuracy'))} against the target's own "
                                f"{_FMT(m.get('target_accuracy'))}; naive stitch {_FMT(m.get('naive_accuracy'))}, wrong (shuffled) "
                                f"pairs {_FMT(m.get('shuffled_accuracy'))} — with {top} anchors, {cfg['estimator']} estimator.")
        self.results["alignment"] = res
        reading = ("A transformation at most affine, fitted on paired anchors, maps one model's space into another's (stitching: "
                   "the target's classifier reads translated source embeddings) or into a text encoder's (zero-shot by cosine to "
                   "class prompts). The captions used as anchors name the class, so this 'zero-shot' is in effect few-shot "
                   "through the anchors.\n\n" + "\n\n".join(readings))
        return Section("alignment", "4 · Can it be aligned with another model?", reading, figures, tables)

    # -- the report ------------------------------------------------------------------------------
    def scorecard_section(self) -> Section:
        rows = []
        for spec, card in self.scorecard.items():
            rows.append({"model": spec, **{k: card[k]["text"] for k in ("robustness", "explanations", "features", "stitching", "zero-shot")
                                           if k in card}})
        return Section("scorecard", "Scorecard", "One headline figure per question and model (details and intervals below): "
                       "accuracy before → after the strongest attack; the best explanation method's pointing game beside the "
                       "random and centre baselines; the linear-probe and kNN accuracy of the frozen features; stitching into the "
                       "other model and zero-shot through the text encoder.", tables=[Table("Per model", rows)])


def _caption(key: str) -> str:
    return key.replace("_", " ").replace("-", " ")


def run_audit(config: dict[str, Any], out: str | Path, cache_dir: str | None = None, use_cache: bool = True,
              device: str = "auto", arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    from medrep.features.cache import EmbeddingCache

    config = validate_config(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    audit = Audit(config, out, EmbeddingCache(cache_dir, enabled=use_cache), device)
    audit.load()
    analyses = config["analyses"]
    if analyses["features"]["enabled"]:
        audit.stage("features", "Feature distributions", audit.features)
    if analyses["robustness"]["enabled"]:
        audit.stage("robustness", "Robustness (representation attacks)", audit.robustness)
    if analyses["explain"]["enabled"]:
        audit.stage("explain", "Explanation maps", audit.explain)
    if analyses["alignment"]["enabled"]:
        audit.stage("alignment", "Alignment", audit.alignment)
    order = {"robustness": 0, "explain": 1, "features": 2, "alignment": 3}
    audit.sections.sort(key=lambda s: order.get(s.id, 9))
    sections = [audit.scorecard_section(), *audit.sections]
    manifest = build_manifest("audit", arguments or {}, seeds={"seed": config["seed"]},
                              data=audit.dataset.describe(), models={s: e.describe() for s, e in audit._encoders.items()},
                              text=getattr(audit.text_encoder, "name", None), timings=audit.timings,
                              total_seconds=round(time.time() - t0, 1), config=config)
    results = {"schema_version": RESULTS_SCHEMA_VERSION, "kind": "audit", "config": config,
               "scorecard": {s: {k: v.get("metric") if isinstance(v, dict) else v for k, v in card.items()}
                             for s, card in audit.scorecard.items()},
               **audit.results}
    write_json_atomic(out / "results.json", results)
    _write_scorecard_csv(out / "scorecard.csv", audit.scorecard)
    write_manifest(out, manifest)
    report = write_report(out / "report.html", config["title"],
                          f"data: {config['data']} · models: {', '.join(config['models'])} · text: {config['text'] or 'none'}",
                          sections, manifest)
    _log(f"report: {report} ({manifest['total_seconds']} s)")
    return results


def _write_scorecard_csv(path: Path, scorecard: dict[str, dict[str, Any]]) -> None:
    keys = ["robustness", "explanations", "features", "stitching", "zero-shot"]

    def w(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model", *keys])
            for spec, card in scorecard.items():
                writer.writerow([spec, *[card.get(k, {}).get("text", "") for k in keys]])
    atomic_write(path, w)
