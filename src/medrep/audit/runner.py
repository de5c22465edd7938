"""`medrep audit`: one dataset, several models, the four analyses, one shared embedding cache, one report.

Each stage is a call into the analysis packages (robustness, explain, features, align) followed by their
own writers; this module only orders the stages, shares encoders and the cache between them, turns
their result objects into report sections and a scorecard, and keeps going when one stage fails (the
failure is shown in its section; everything already computed stays on disk).
"""
from __future__ import annotations

import itertools
import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from medrep.audit.config import audit_place, validate_config
from medrep.errors import MedrepError, Param
from medrep.io import csv_safe, finite_json, slug, write_csv_atomic, write_json_atomic
from medrep.manifest import build_manifest, write_manifest
from medrep.partial import discard_partials
from medrep.progress import is_quiet
from medrep.report import Figure, Section, Table, write_report
from medrep.results import RESULTS_SCHEMA_VERSION

# Stage key → section title (the same title whether the stage succeeds or fails).
TITLES = {
    "robustness": "1 · Robustness of the representation",
    "explain": "2 · Do the explanations point at the lesion?",
    "features": "3 · Are the features discriminative?",
    "alignment": "4 · Can it be aligned with another model?",
    "subgroups": "5 · Who does it fail for?",
}
QUESTIONS = {  # scorecard key → (question, headline figure)
    "robustness": ("1 · robustness", "lowest accuracy under attack"),
    "explanations": ("2 · explanations", "pointing game of the best method"),
    "features": ("3 · features", "linear-probe accuracy"),
    "stitching": ("4 · alignment: stitching", "stitched accuracy"),
    "caption-alignment": ("4 · alignment: captions", "caption-alignment accuracy"),
    "subgroups": ("5 · who it fails for", "largest gap between subgroups"),
}


def _FMT(m: Any) -> str:  # noqa: N802 - a metric dict as "0.123" ("–" when absent)
    v = m.get("value") if isinstance(m, dict) else m
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _markup_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _log(msg: str) -> None:
    if not is_quiet():
        from rich.console import Console

        Console(stderr=True, highlight=False).print(f"[bold blue]audit[/] {msg}")


class Audit:
    def __init__(self, config: dict[str, Any], out: Path, cache, device: str, resume: bool = False):
        self.config, self.out, self.cache, self.device, self.resume = config, out, cache, device, resume
        self.results: dict[str, Any] = {}
        self.sections: list[Section] = []
        self.scorecard: dict[str, dict[str, Any]] = {}
        self.timings: dict[str, float] = {}
        self._encoders: dict[str, Any] = {}
        self._text = None
        self.item_subgroups: list[tuple[str, Any]] = []  # (what, SubgroupResult) of attacks / explanations with `by`
        self.auto_split: dict[str, Any] | None = None  # the split made here when the data has none
        self.caption_alignment_skipped: str | None = None  # why caption alignment did not run, where it could not

    # -- shared inputs ---------------------------------------------------------------------------
    def load(self) -> None:
        from medrep.data import load_dataset
        from medrep.devices import resolve_device
        from medrep.models import load_encoder

        from medrep.data.autosplit import announce_split, with_train_test

        train_split, test_split = self.config["train_split"], self.config["test_split"]
        self.dataset, self.auto_split = with_train_test(load_dataset(self.config["data"]), train_split, test_split,
                                                        self.config["seed"], where="data")
        if self.auto_split is not None:
            _log(_markup_escape(announce_split(self.auto_split, train_split, test_split)))
        from medrep.data.findings import require_single_label

        require_single_label(self.dataset, where="data")
        for split in (self.config["train_split"], self.config["test_split"]):
            if split not in self.dataset.splits:
                raise MedrepError(f"the data has no {split!r} split (available: {', '.join(self.dataset.splits) or 'none'}); "
                                  "the audit fits probes on one split and tests on another: give a CSV manifest a "
                                  "split column, or use ROOT/train/<class>/… and ROOT/test/<class>/… folders",
                                  where="train_split" if split == self.config["train_split"] else "test_split")
        self.train = self.dataset.split(self.config["train_split"])
        self.test = self.dataset.split(self.config["test_split"])
        import torch

        device = resolve_device(self.device)
        if self.config["compile"]:
            from medrep.embeddings.extract import check_compile_available

            check_compile_available("compile")
        for i, spec in enumerate(self.config["models"]):
            # A model with random weights (timm:…?pretrained=false) is the same model in every run with this seed,
            # so its cache entries are reused; the caller's global generator is left as it was.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.config["seed"])
                try:
                    self._encoders[spec] = load_encoder(spec).to(device)
                    self._encoders[spec].compile_extraction = self.config["compile"]
                except MedrepError as err:  # the model parameter is this YAML entry; any other place stays in the message
                    message = str(err)[len(f"{err.where}: "):] if err.where and str(err).startswith(f"{err.where}: ") else str(err)
                    if err.where and err.where != Param("model"):
                        message = f"{err.where}: {message}"
                    raise MedrepError(message, where=f"models[{i}]") from err
            self.scorecard[spec] = {"model": spec}
            self._declare_head_classes(self._encoders[spec])
        # Two specs of one architecture (timm:vit…?depth=2 and ?depth=4) share an encoder name; the analyses
        # key their results by name, so such models are renamed to their full spec.
        names = [e.name for e in self._encoders.values()]
        for spec, enc in self._encoders.items():
            if names.count(enc.name) > 1:
                enc.name = spec

    def _declare_head_classes(self, encoder) -> None:
        """``head_classes`` names the outputs of every head of that size (heads of another size keep their own)."""
        names = self.config.get("head_classes")
        if names and encoder.has_head and encoder.num_classes in (None, len(names)):
            encoder.declare_head_classes(names)

    def head_notes(self) -> dict[str, str]:
        """spec → why its head is not used on this data (models whose head fits, or with none, are absent)."""
        from medrep.robustness.classifiers import head_note

        notes = {spec: head_note(enc, self.dataset.classes) for spec, enc in self._encoders.items()}
        return {spec: note for spec, note in notes.items() if note}

    @property
    def text_encoder(self):
        if self._text is None and self.config["text"]:
            from medrep.models import load_text_encoder

            self._text = load_text_encoder(self.config["text"])
        return self._text

    def stage(self, key: str, fn: Callable[[Path], Section], number: int = 1, total: int = 1) -> None:
        """Run one analysis; a failure becomes an error section and the audit goes on."""
        title = TITLES[key]
        stage_dir = self.out / key
        _log(f"\\[{number}/{total}] {title} …")
        t0 = time.time()
        try:
            section = fn(stage_dir)
        except MedrepError as err:
            err = err.placed(audit_place(key, err.where))  # a parameter as its key in the config
            section = Section(key, title, error=str(err))
            self.results[key] = {"error": str(err)}
        except Exception as err:  # noqa: BLE001 - a bug in one analysis must not lose the others
            section = Section(key, title, error=f"{type(err).__name__}: {err}")
            self.results[key] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=8)}
        self.timings[key] = round(time.time() - t0, 1)
        self.sections.append(section)
        status = f"[red]failed[/]: {_markup_escape(section.error)}" if section.error else "[green]done[/]"
        _log(f"\\[{number}/{total}] {title}: {status} ({self.timings[key]} s)")

    def n_boot(self, default: int) -> int:
        return self.config["n_boot"] or default

    def models_for(self, analysis: str) -> list[str]:
        return self.config["analyses"][analysis].get("models") or self.config["models"]

    # -- the four questions ----------------------------------------------------------------------
    def robustness(self, out: Path) -> Section:
        cfg = self.config["analyses"]["robustness"]
        test = self.test.limit(cfg["limit"], seed=self.config["seed"]) if cfg["limit"] else self.test
        figures, tables, res, readings = [], [], {}, []
        lowest: dict[str, dict[str, Any]] = {}
        attacked: dict[tuple[str, str], Any] = {}  # (spec, objective) → attack result
        controls = [c for c in cfg["controls"] if c not in self._encoders]
        for spec in [*self.models_for("robustness"), *controls]:
            control = spec in controls
            for objective in (cfg["objectives"][:1] if control else cfg["objectives"]):  # a control: the first objective
                result, paths = self._attack(spec, objective, test, out / f"{slug(spec)}-{objective}")
                attacked[spec, objective] = result
                self._by_subgroup(f"{spec}, {objective} attack", result, test, "attack")
                res.setdefault(spec, {})[objective] = result.to_dict()
                label = f"{spec}{' (positive control)' if control else ''}"
                note = _accuracy_note(result)
                tables.append(Table(f"{label} — {objective} ({cfg['norm']}, {'+'.join(result.config.get('attack', ['pgd']))}, "
                                    f"{cfg['attack_steps']} steps, classifier: {result.primary})", _robustness_rows(result, objective),
                                    note=" ".join(n for n in (note, _ROBUSTNESS_TABLE_NOTE) if n)))
                figures.append(Figure(paths["accuracy_vs_eps"], f"{label}, {objective}: accuracy under attack vs ε", note=note))
                gal = [k for k in paths if k.startswith("gallery_")]
                if gal:
                    figures.append(Figure(paths[gal[-1]], f"{label}, {objective}: original / perturbed / amplified difference"
                                          + (" / target" if result.config.get("target") else "")))
                low = _lowest_accuracy(result, objective)
                low["classifier"] = result.primary
                if low["value"] < lowest.get(spec, {}).get("value", float("inf")):
                    lowest[spec] = low
                readings.extend(_robustness_readings(label, objective, result))
        for spec, low in lowest.items():
            text = (f"{_FMT(low['clean'])} → {_FMT(low['metric'])} (lowest over ε and objectives: {low['objective']}, "
                    f"{low['eps_text']})")
            if low["classifier"] != "head":  # the accuracy of a stand-in, not of the model's own classifier
                text += f"; accuracy of a {'linear probe' if low['classifier'] == 'probe' else low['classifier']}, not the model's head"
            if spec in self.scorecard:
                self.scorecard[spec]["robustness"] = {"text": text, "metric": low["metric"]}
        verdicts = {}
        for control in controls:
            v = verdicts[control] = control_verdict(control, _counterpart(self._encoders[control]), cfg["objectives"][0],
                                                    attacked, self.models_for("robustness"))
            readings.append(_control_reading(control, lowest, self.config["models"]) + " " + v["sentence"])
            _log(_markup_escape(v["sentence"]))
            # beside the control's figures: its verdict when weak; without a verdict, whether it stands clear at all
            if v["verdict"] == "not judged":
                weak = _weak_control_note(control, lowest, self.config["models"])
            else:
                weak = v["sentence"] if v["verdict"] == "weak" else ""
            for f in figures:
                if weak and f.caption.startswith(f"{control} (positive control)"):
                    f.note = " ".join(n for n in (f.note, weak) if n)
        if verdicts:
            res["controls"] = verdicts
            tables.append(Table("Positive control: a robust model against its fragile counterpart",
                                [_verdict_row(v) for v in verdicts.values()],
                                note=f"passes: attacked accuracy at least {CONTROL_GAP:.0%} above the counterpart's at "
                                     f"ε = 4/255, clean accuracy within {CONTROL_CLEAN:.0%} of it; otherwise the control is weak"))
        self.results["robustness"] = res
        readings += [note[0].upper() + note[1:] + "." for spec, note in self.head_notes().items()
                     if spec in self.models_for("robustness")]
        return _section("robustness", "Imperceptible pixel changes (bounded by ε in raw [0, 1] pixel units, the model's normalisation inside the "
                                      "graph) move each model's representation: 'collide' pushes an image's embedding onto an image of another "
                                      "class, 'push' drives it away from where it was. A large accuracy drop at PSNR above ~35 dB means the "
                                      "representation is not semantically stable.", readings, figures, tables)

    def _attack(self, spec: str, objective: str, test, d: Path):
        from medrep.robustness.config import AttackConfig
        from medrep.robustness.outputs import write_attack_outputs
        from medrep.robustness.run import run_attack

        cfg = self.config["analyses"]["robustness"]
        enc = self._encoders.get(spec) or self._load_control(spec)
        from medrep.configs import from_mapping

        # the test items are drawn (cfg["limit"]) once for every model, before the attack
        config = from_mapping(AttackConfig, {**self.config, **cfg}, by="key", objective=objective, limit=None,
                              n_boot=self.n_boot(500))
        result = run_attack(enc, test, self.train, config, cache=self.cache, out_dir=d, resume=self.resume)
        return result, write_attack_outputs(result, d)

    def _load_control(self, spec: str):
        import torch

        from medrep.devices import resolve_device
        from medrep.models import load_encoder

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config["seed"])
            self._encoders[spec] = load_encoder(spec).to(resolve_device(self.device))
        return self._encoders[spec]

    def explain(self, out: Path) -> Section:
        from medrep.configs import from_mapping
        from medrep.explain.config import ExplainConfig
        from medrep.explain.run import default_target, run_explain, write_explain_outputs

        cfg = self.config["analyses"]["explain"]
        figures, tables, res, readings = [], [], {}, []
        for spec in self.models_for("explain"):
            enc = self._encoders[spec]
            d = out / slug(spec)
            target = default_target(enc, self.test.classes) if cfg["explain_target"] == "auto" else cfg["explain_target"]
            if target == "class" and not enc.head_fit(self.test.classes).fits:
                target = "embedding"  # a head trained on other classes cannot say which output is the item's class
                readings.append(f"{spec}: explained towards each class's mean embedding (its head does not fit the data).")
            # methods this model's structure does not support are left out (and said so), never failed late
            config = from_mapping(ExplainConfig, {**self.config, **cfg}, by="key", target=target, n_boot=self.n_boot(500),
                                  skip_unsupported=True)
            result = run_explain(enc, self.test, config, cache=self.cache, out_dir=d, resume=self.resume)
            self._by_subgroup(f"{spec}, explanations", result, self.test, "explain")
            paths = write_explain_outputs(result, d)
            rd = result.to_dict()
            res[spec] = rd
            keys = rd["metric_names"]
            scored = "lesion images" if rd["localisation"]["run"] else "images (the data has no masks: localisation not run)"
            tables.append(Table(f"{spec} — explanation scores on {rd['n_images']} {scored} (mean [95% CI])",
                                [{"method": m, **{k: rd["metrics"][m][k] for k in keys}} for m in rd["methods"]],
                                note="random and center are baselines; higher is better except deletion AUC. "
                                     f"Intervals: {result.interval_legend()}."))
            if "gallery" in paths:
                figures.append(Figure(paths["gallery"], f"{spec}: image, lesion outline and each method's map",
                                      note=_explain_target_note(target, enc, self.test.classes)))
            skipped = rd["settings"].get("skipped_methods") or {}
            if skipped:
                by_reason: dict[str, list[str]] = {}  # one reason, said once, for the methods it rules out
                for method, why in skipped.items():
                    by_reason.setdefault(why, []).append(method)
                readings.append(f"{spec}: " + "; ".join(f"{', '.join(ms)} left out — {why}" for why, ms in by_reason.items()))
                _log(f"explain {_markup_escape(spec)}: left out {', '.join(skipped)} (not supported by this model)")
            if "sanity" in paths:
                figures.append(Figure(paths["sanity"], f"{spec}: similarity of each method's map to the trained model's as "
                                                       "units are randomised from the top down (95% intervals)"))
            tables.append(_verdict_table(spec, result))
            readings += [f"{spec}: {v['sentence']}" for m, v in result.verdicts.items() if not v.get("baseline")]
            pointing = {m: rd["metrics"][m].get("pointing", {}).get("value") for m in rd["methods"]}
            real = {m: v for m, v in pointing.items() if m not in rd["baselines"] and v is not None}
            if real:
                best = max(real, key=real.get)
                self.scorecard[spec]["explanations"] = {
                    "text": f"{best}: pointing {real[best]:.3f} (random {_FMT(pointing.get('random'))}, "
                            f"centre {_FMT(pointing.get('center'))})", "metric": rd["metrics"][best]["pointing"]}
                readings.append(f"{spec}: the best method on the pointing game is {best} ({real[best]:.3f}); the random map "
                                f"scores {_FMT(pointing.get('random'))} and the centre prior "
                                f"{_FMT(pointing.get('center'))}. A method is only informative where it beats both.")
        self.results["explain"] = res
        area = next(iter(res.values()), {}).get("mask_area") or {}
        if res and not next(iter(res.values()))["localisation"]["run"]:
            return _section("explain", "The data has no lesion masks, so localisation (pointing game, IoU, mass, AUPRC) was not "
                                       "run; each method's map is scored for faithfulness (deletion/insertion AUC of the target "
                                       "score) and, where asked, by the sanity checks.", readings, figures, tables)
        return _section("explain", "Each method's map is scored against the pixel-exact lesion masks: the pointing game (is the map's maximum "
                                   "inside the lesion), IoU of the top-k% pixels (enclosing-box mode as in the paper, and plain pixel IoU), the "
                                   "share of map energy inside the mask, and faithfulness (deletion/insertion AUC of the target score)."
                                   + (f" Lesions cover {area.get('mean', float('nan')):.1%} of the image on average, so a centre-biased map is "
                                      "a real competitor." if isinstance(area.get("mean"), float) else ""), readings, figures, tables)

    def features(self, out: Path) -> Section:
        from medrep.configs import from_mapping
        from medrep.features.outputs import write_features_outputs
        from medrep.features.run import run_features
        from medrep.features.config import FeaturesConfig

        cfg = self.config["analyses"]["features"]
        encs = [self._encoders[s] for s in self.config["models"]]
        config = from_mapping(FeaturesConfig, {**self.config, **cfg}, by="key", n_boot=self.n_boot(200))
        result = run_features(encs, self.dataset, config, cache=self.cache)
        figs = write_features_outputs(result, out)
        rd = result.to_dict()
        self.results["features"] = rd
        from medrep.features.probes import describe_adapted

        adapted = [line[0].upper() + line[1:] + "." for line in describe_adapted(result.settings.get("adapted", {}))]
        tables = [Table("Per model (test split; probes fitted on train)", rd["tables"]["models"],
                        note=" ".join([_features_interval_note(result.settings), *adapted]))]
        if rd["tables"].get("pairs"):
            tables.append(Table("Between models", rd["tables"]["pairs"],
                                note="p-values from a permutation null; cka rows: the test items CKA was computed on "
                                     "(a seeded subsample when fewer than cka all rows)"))
        readings = []
        for spec in self.config["models"]:
            m = rd["models"].get(spec) or rd["models"].get(self._encoders[spec].name) or {}
            if m:
                self.scorecard[spec]["features"] = {"text": f"linear probe {_FMT(m.get('linear_probe_accuracy'))}, "
                                                            f"kNN {_FMT(m.get('knn_accuracy'))}", "metric": m.get("linear_probe_accuracy")}
                readings.append(f"{spec}: kNN accuracy {_FMT(m.get('knn_accuracy'))}, linear probe {_FMT(m.get('linear_probe_accuracy'))} "
                                f"(AUC {_FMT(m.get('linear_probe_auc'))}), silhouette {_FMT(m.get('silhouette'))}.")
        readings += adapted
        for line in describe_adapted(result.settings.get("adapted", {})):
            _log(_markup_escape(line))
        section = _section("features",
                           "Frozen embeddings from the shared cache: neighbours, linear and few-shot probes, cluster separability, "
                           "and similarity between the models (CKA and mutual kNN, each against a permutation null so that "
                           "high scores from model size alone are not read as agreement).", readings,
                           [Figure(p, _caption(k)) for k, p in figs.items()], tables)
        if self.config["analyses"]["overlay"]["enabled"]:
            try:
                self._overlay(out / "overlay", section)
            except Exception as err:  # noqa: BLE001 - the features results stand without the overlay test
                message = str(err) if isinstance(err, MedrepError) else f"{type(err).__name__}: {err}"
                self.results["overlay"] = {"error": message}
                if not isinstance(err, MedrepError):
                    self.results["overlay"]["traceback"] = traceback.format_exc(limit=8)
                section.reading += f"\n\nThe text-overlay test did not complete: {message}"
                _log(f"text-overlay test failed: {_markup_escape(message)}")
        return section

    def _overlay(self, out: Path, section: Section) -> None:
        from medrep.configs import from_mapping
        from medrep.overlay import OverlayConfig, run_overlay, write_overlay_outputs

        cfg = self.config["analyses"]["overlay"]
        encs = [self._encoders[s] for s in self.config["models"]]
        k = cfg["k"] if cfg["k"] is not None else self.config["analyses"]["features"]["k"]
        config = from_mapping(OverlayConfig, {**self.config, **cfg}, by="key", k=k, n_boot=self.n_boot(1000))
        result = run_overlay(encs, self.dataset, config, cache=self.cache)
        figs = write_overlay_outputs(result, out, dataset=self.test)
        rd = result.to_dict()
        self.results["overlay"] = rd
        section.tables.append(Table("Text-overlay test: class names written on the test images", result.table(),
                                    note="flip rate: share of predictions that change when the word is written on the image"))
        section.figures += [Figure(p, _caption(k)) for k, p in figs.items()]
        section.reading += ("\n\nText-overlay test: each class name is rendered onto the test images; the cosine shift of the "
                            "embedding and how often the clean-trained probe and kNN change their answer show whether written "
                            "text sways the model.\n\n" + "\n\n".join(result.readings()))

    def alignment(self, out: Path) -> Section:
        from medrep.align.outputs import write_align_outputs
        from medrep.align.run import run_alignment

        cfg = self.config["analyses"]["alignment"]
        specs = self.config["models"]
        pairs = list(itertools.permutations(specs, 2)) if cfg["stitching"] and len(specs) > 1 else []
        jobs: list[tuple[str, str | None, bool]] = [(s, t, False) for s, t in pairs]
        figures, tables, res, readings = [], [], {}, []
        if cfg["caption_alignment"] and self.text_encoder is not None:
            if self.train.has_captions:
                jobs += [(s, None, True) for s in specs]
            else:
                self.caption_alignment_skipped = "not run: the training data has no captions to use as anchors"
                readings.append(f"Caption alignment {self.caption_alignment_skipped} (the data source carries none).")
        if not jobs and readings:
            self.results["alignment"] = {}
            return _section("alignment", "Nothing could be aligned on this data.", readings, [], [])
        if not jobs:
            raise MedrepError("nothing to align: give two models (stitching) or a text encoder (zero-shot)", where="analyses.alignment")
        from medrep.align.run import fit_anchor_counts

        anchors, scaled = fit_anchor_counts(sorted(set(cfg["anchors"])), len(self.train))
        if scaled:
            readings.append(f"Anchor counts scaled down to the data: {', '.join(map(str, scaled['asked']))} → "
                            f"{', '.join(map(str, scaled['used']))} ({scaled['why']}).")
        top = str(max(anchors))
        from medrep.align.config import AlignConfig
        from medrep.configs import from_mapping

        config = from_mapping(AlignConfig, {**self.config, **cfg}, by="key", anchors=anchors, n_boot=self.n_boot(1000))
        for src, tgt, text in jobs:
            result = run_alignment(self._encoders[src], self.dataset, config, target_encoder=self._encoders[tgt] if tgt else None,
                                   text_encoder=self.text_encoder if text else None, cache=self.cache)
            name = f"{src} → {tgt or self.text_encoder.name}"
            paths = write_align_outputs(result, out / slug(name.replace(" → ", "-to-")))
            rd = result.to_dict()
            res[name] = rd
            from medrep.align.result import METRIC_HELP

            rows = [{"anchors": int(n), **ms} for n, ms in rd["by_anchors"].items()]
            legend = {k: METRIC_HELP[k] for k in (rows[0] if rows else {}) if k in METRIC_HELP}
            if any(t.legend == legend for t in tables):
                legend = {}  # explained under the first table with these columns
            tables.append(Table(name, rows, headers={k: k.replace("zero_shot_", "caption-alignment ").replace("_", " ")
                                                     for k in rows[0]} if rows else {}, legend=legend))
            figures += [Figure(p, f"{name}: {_caption(k)}") for k, p in paths.items()]
            m = rd["by_anchors"].get(top, {})
            if text:
                self.scorecard[src]["caption-alignment"] = {"text": f"{_FMT(m.get('zero_shot_accuracy'))} via {self.text_encoder.name} "
                                                            f"(naive {_FMT(m.get('zero_shot_naive_accuracy'))}, {top} anchors)",
                                                    "metric": m.get("zero_shot_accuracy")}
                readings.append(f"{name}: caption-alignment accuracy {_FMT(m.get('zero_shot_accuracy'))} with {top} image–caption anchors "
                                f"(naive mapping {_FMT(m.get('zero_shot_naive_accuracy'))}, chance {_FMT(m.get('chance_accuracy'))}).")
            else:
                self.scorecard[src].setdefault("stitching", {"text": f"→ {tgt}: {_FMT(m.get('stitched_accuracy'))} "
                                                                     f"(target's own {_FMT(m.get('target_accuracy'))}, naive {_FMT(m.get('naive_accuracy'))})",
                                                             "metric": m.get("stitched_accuracy")})
                readings.append(f"{name}: stitched accuracy {_FMT(m.get('stitched_accuracy'))} against the target's own "
                                f"{_FMT(m.get('target_accuracy'))}; naive stitch {_FMT(m.get('naive_accuracy'))}, wrong (shuffled) "
                                f"pairs {_FMT(m.get('shuffled_accuracy'))} (mean of {_runs(m)} permutations, SD {_FMT(m.get('shuffled_accuracy_sd'))}) — with {top} anchors, {cfg['estimator']} estimator.")
        self.results["alignment"] = res
        return _section("alignment", "A transformation at most affine, fitted on paired anchors, maps one model's space into another's (stitching: "
                                     "the target's classifier reads translated source embeddings) or into a text encoder's (classification by cosine to "
                                     "class prompts: caption alignment). The captions used as anchors name the class, so this is not zero-shot but few-shot "
                                     "through the anchors.", readings, figures, tables)

    def subgroup_config(self, data=None):
        """The SubgroupConfig of the audit's `by` (None without it, or when ``data`` lacks an attribute)."""
        from medrep.subgroups.config import DECADES, SubgroupConfig

        if not self.config["by"] or (data is not None and not set(self.config["by"]) <= set(data.attribute_names)):
            return None
        cfg = self.config["analyses"]["subgroups"]
        return SubgroupConfig(by=tuple(self.config["by"]), min_group_size=self.config["min_group_size"],
                              age_bins=tuple(self.config["age_bins"] or DECADES), n_boot=self.n_boot(500),
                              n_permutations=cfg["n_permutations"], separability_permutations=cfg["probe_permutations"],
                              seed=self.config["seed"])

    def _by_subgroup(self, what: str, result: Any, data, kind: str) -> None:
        """An attack's or explanation's per-item figures by subgroup, when the audit's data has the attributes."""
        config = self.subgroup_config(data)
        if config is None:
            return
        from medrep.subgroups.items import attack_subgroups, explain_subgroups

        result.subgroups = (attack_subgroups(result, data, config, self.config["analyses"]["robustness"]["norm"])
                            if kind == "attack" else explain_subgroups(result, data, config))
        self.item_subgroups.append((what, result.subgroups))

    def subgroups(self, out: Path) -> Section:
        from medrep.data import load_dataset
        from medrep.features.run import run_probe_subgroups
        from medrep.subgroups.outputs import write_subgroup_outputs

        cfg = self.config["analyses"]["subgroups"]
        data = load_dataset(cfg["data"]) if cfg["data"] else self.dataset
        config = self.subgroup_config()
        from medrep.subgroups.run import attribute_groups

        attribute_groups(data, config.by, config.age_bins, where="by")  # an attribute the data lacks: say so first
        encs = [self._encoders[s] for s in self.config["models"]]
        result, overall = run_probe_subgroups(encs, data, config, train_split=self.config["train_split"],
                                              test_split=self.config["test_split"], limit=cfg["limit"],
                                              k=self.config["analyses"]["features"]["k"],
                                              batch_size=self.config["batch_size"], cache=self.cache, seed=self.config["seed"])
        names = {spec: self._encoders[spec].name for spec in self.config["models"]}
        figs = write_subgroup_outputs(result, out, overall, list(names.values()))
        self.results["subgroups"] = {"data": cfg["data"] or self.config["data"], "by": self.config["by"],
                                     "settings": result.settings, "subgroups": result.to_dict(),
                                     **{f"{what}": r.to_dict() for what, r in self.item_subgroups}}
        for spec, name in names.items():
            gap = result.largest_gap(f"{name}/linear_probe_accuracy")
            shortcuts = [a.name for a in result.attributes.values() if a.shortcut.get(name, {}).get("flagged")]
            if gap is not None:
                groups = result.attributes[gap["attribute"]].figures[gap["figure"]]["groups"]
                self.scorecard[spec]["subgroups"] = {
                    "text": f"linear-probe accuracy by {gap['attribute']}: {gap['worst']} "
                            f"{_FMT(groups[gap['worst']]['metric'].value)} vs {gap['best']} "
                            f"{_FMT(groups[gap['best']]['metric'].value)} "
                            f"(p = {_FMT(gap['gap_p'])}); likely shortcut: {', '.join(shortcuts) or 'none'}",
                    "metric": {"value": gap["gap"], "low": None, "high": None, "n": None}}
        return subgroup_section(result, names, figs, self.item_subgroups,
                                data_note=f" (on {cfg['data']})" if cfg["data"] else "")

    # -- the report ------------------------------------------------------------------------------
    def scorecard_section(self) -> Section:
        """One table per model: each question's headline figure with its 95% interval, and its context."""
        tables = []
        for spec, card in self.scorecard.items():
            rows = []
            for key, (question, headline) in QUESTIONS.items():
                if key in ("stitching", "caption-alignment") and key not in card and self._skipped_alignment(key):
                    continue
                if key == "subgroups" and key not in card and not self.config["by"]:
                    continue
                entry = card.get(key)
                rows.append({"question": question, "headline figure": headline,
                             "value [95% CI]": entry.get("metric") if entry else None,
                             "context": entry["text"] if entry else self._missing(spec, key)})
            tables.append(Table(spec, rows))
        from medrep.data.autosplit import announce_split

        split = announce_split(self.auto_split, self.config["train_split"], self.config["test_split"])
        reading = ((f"{split[0].upper()}{split[1:]}.\n\n" if split else "") +
                   "One headline figure per question and model, with its 95% interval (how each is computed: in the "
                   "sections below). 1: the lowest accuracy under attack over the ε values and objectives tried (before → "
                   "after, and which objective and ε, in the context column); 2: how often "
                   "the best explanation method's maximum falls inside the lesion, beside the random and centre baselines; "
                   "3: accuracy of a linear probe on the frozen features; 4: accuracy when another model's classifier reads "
                   "this model's embeddings after alignment (stitching), and classification through the text encoder after "
                   "alignment on image–caption anchors (caption alignment; not zero-shot, the captions name the classes). "
                   "5 (with `by`): the largest gap in linear-probe accuracy between subgroups, with its permutation p-value. "
                   "Intervals that overlap a baseline mean the difference is not established on this many images.")
        return Section("scorecard", "Scorecard", reading, tables=tables)

    def _missing(self, spec: str, key: str) -> str:
        stage = {"explanations": "explain", "stitching": "alignment", "caption-alignment": "alignment"}.get(key, key)
        if key == "caption-alignment" and self.caption_alignment_skipped:
            return self.caption_alignment_skipped
        if not self.config["analyses"][stage]["enabled"]:
            return "not run (disabled in the config)"
        if "error" in self.results.get(stage, {}):
            return "not available: the analysis failed (see its section)"
        if stage in ("robustness", "explain") and spec not in self.models_for(stage):
            return f"not run for this model (not in analyses.{stage}.models)"
        return "not available"

    def _skipped_alignment(self, key: str) -> bool:
        cfg = self.config["analyses"]["alignment"]
        if key == "stitching":
            return not cfg["stitching"] or len(self.config["models"]) < 2
        return not cfg["caption_alignment"] or not self.config["text"]


def subgroup_section(result: Any, names: dict[str, str], figs: dict[str, Path], item_subgroups: list[tuple[str, Any]],
                     data_note: str = "") -> Section:
    """"Who does it fail for?": a forest plot per model, the gaps, the separability / shortcut table, readings."""
    from medrep.subgroups.outputs import figure_words, readings

    gaps = [{"model": next((s for s, n in names.items() if f.startswith(f"{n}/")), ""), "attribute": a.name,
             "figure": figure_words(f), "worst": b["worst"], "best": b["best"], "gap": b["gap"], "p (permutation)": b["gap_p"],
             "too small to judge": ", ".join(g for g, d in b["groups"].items() if d["too_small"]) or "–"}
            for a in result.attributes.values() for f, b in a.figures.items()]
    for what, r in item_subgroups:
        gaps += [{"model": what, "attribute": a.name, "figure": figure_words(f), "worst": b["worst"], "best": b["best"],
                  "gap": b["gap"], "p (permutation)": b["gap_p"],
                  "too small to judge": ", ".join(g for g, d in b["groups"].items() if d["too_small"]) or "–"}
                 for a in r.attributes.values() for f, b in a.figures.items() if b["gap"] is not None]
    sep = []
    for a in result.attributes.values():
        for spec, name in names.items():
            s, c = a.separability.get(name, {}), a.shortcut.get(name, {})
            if not s and not c:
                continue
            sep.append({"model": spec, "attribute": a.name, "attribute AUROC": _cell(s.get("auroc")),
                        "p (permutation)": s.get("p_value"), "KS significant": f"{s.get('ks_significant', 0)}/{s.get('ks_tests', 0)}",
                        "accuracy": _cell(c.get("accuracy")), "re-weighted accuracy": _cell(c.get("reweighted_accuracy")),
                        "drop": _cell(c.get("drop")), "likely shortcut": "yes" if c.get("flagged") else "no"})
    spec_of = {n: s for s, n in names.items()}
    how = str(result.settings.get("intervals", "")).removeprefix("95%: ")
    figures = [Figure(p, f"{spec_of.get(k.split(':', 1)[1], k)}: each subgroup's figure with its 95% interval"
                         + (f" ({how.replace(' (', ', ').replace(')', '')})" if how else "") + "; hollow grey: too small to "
                         "judge; dashed red line: the whole test set") for k, p in figs.items()]
    intro = ("Every headline figure by subgroup" + data_note + ": the gap between the best and the worst subgroup large enough to "
             "judge, with a permutation p-value (the attribute shuffled within each class, so a subgroup that merely holds more "
             "hard cases shows no gap); separability — how well a cross-validated probe reads the attribute from the "
             "embeddings (AUROC with its permutation null) and Kolmogorov–Smirnov tests between subgroups on the leading PCA "
             "modes and the disease probe's scores (Holm-corrected, Glocker et al. 2023); and a shortcut check — the probe's "
             "accuracy on the test set re-weighted so that attribute and class are independent: a drop whose interval "
             "excludes 0 flags a likely shortcut.")
    perms = result.settings.get("separability_permutations")
    floor = (f" p (permutation) comes from {perms} permutations, so it cannot fall below {1 / (1 + perms):.3f}."
             if perms else "")
    tables = [Table("Gaps between subgroups", gaps, note="gap: best minus worst subgroup's figure"),
              Table("Separability and shortcut check", sep,
                    note="attribute AUROC 0.5: the attribute cannot be read from the embeddings; KS: tests significant "
                         "after Holm's correction / tests run; drop: accuracy minus the re-weighted accuracy." + floor)]
    notes = [n[0].upper() + n[1:] + "." for n in result.notes]  # items in no subgroup, attributes with one subgroup
    return Section("subgroups", TITLES["subgroups"],
                   "\n\n".join([intro, *notes, *readings(result, list(names.values()))]), figures, tables, figures_first=True)


def _features_interval_note(settings: dict[str, Any]) -> str:
    """The kinds of interval in the features table (they differ by column), and patient clustering where it applies."""
    text = str(settings.get("intervals") or "").removeprefix("95%: ")
    note = f"95% intervals: {text}." if text else ""
    n_patients, n_images = settings.get("n_patients"), settings.get("n_images")
    if n_patients and n_images and n_patients < n_images:
        note += (f" The probes' intervals resample patients whole ({n_patients} patients for {n_images} test images), "
                 "so they are wider than intervals over images would be.")
    return note


def _explain_target_note(target: str, encoder: Any, classes: list[str]) -> str:
    """Maps that explain something other than the class score a reader would assume, said beside the gallery."""
    if target == "class":
        return ""
    if target == "embedding":
        why = ("the model has no classification head" if not encoder.has_head
               else f"the model's head is not used: {encoder.head_fit(classes).reason}")
        return ("The maps explain the similarity of each image's embedding to its class's mean embedding, not a class "
                f"score ({why}).")
    return f"The maps explain the {target} score, not the true class's."


def _cell(metric: Any) -> Any:
    """A Metric as the {value, low, high, n} cell that tables and their CSVs read (other values as they are)."""
    return metric.to_dict() if hasattr(metric, "to_dict") else metric


def _verdict_table(spec: str, result: Any) -> Table:
    """One row per method: localises / depends on the model / faithful (yes, no, not run) and the sentence."""
    rows = []
    for method, v in result.verdicts.items():
        if v.get("baseline") and "localises" not in v:
            rows.append({"method": method, "localises": "baseline", "depends on the model": "", "faithful": "",
                         "reading": v["sentence"]})
            continue
        rows.append({"method": method, "localises": v["localises"]["answer"],
                     "depends on the model": v["depends_on_model"]["answer"], "faithful": v["faithful"]["answer"],
                     "reading": v["sentence"]})
    return Table(f"{spec} — verdict per method", rows,
                 note="localises: the pointing-game interval lies above the centre prior; depends on the model: passes "
                      "cascading randomisation (Spearman |map| below the threshold after every unit is randomised); "
                      "faithful: deletion (and ROAD) beat a random pixel order.")


def _robustness_rows(result, objective: str) -> list[dict[str, Any]]:
    from medrep.robustness.outputs import eps_label

    norm = result.config["norm"]
    rows = []
    for s in result.summaries:
        m = s["metrics"]
        att = s.get("attacks") or {}
        per = att.get("per_attack") or {}
        # one column per noise σ: picking the best σ on these very images would flatter the detector
        noise = {f"noise-check AUC (σ = {d['sigma']:g})": d["roc_auc"] for d in s["detector"]["by_sigma"]}
        rows.append({("ε" if norm == "linf" else "L2 ε"): eps_label(s["eps"], norm),
                     "clean accuracy": m["clean_accuracy"],
                     "attacked accuracy": m["attacked_accuracy"],
                     **({f"{a} alone": v["attacked_accuracy"] for a, v in per.items()} if len(per) > 1 else {}),
                     **({"gradient masking": "suspected" if att["gradient_masking_suspected"] else "no"}
                        if "gradient_masking_suspected" in att else {}),
                     **({"match success": m["match_success_rate"], "cos to target before": m["cosine_to_target_before"],
                         "cos to target after": m["cosine_to_target_after"]} if result.config.get("target") else
                        {"relative change": m["relative_change"]}),
                     "PSNR (dB)": m["psnr_mean"], "SSIM": m["ssim_mean"], **noise})
    return rows


_ROBUSTNESS_TABLE_NOTE = ("95% intervals: Wilson score intervals for accuracies and success rates (one 0/1 outcome per "
                          "image), percentile bootstrap over images for the rest. Noise-check AUC: how well relabelling "
                          "under random noise tells attacked images from clean ones (below 0.5: see the reading).")


def _accuracy_note(result) -> str:
    """What the attack's accuracies are not, where a reader would assume they are: the model's own head's (a probe
    stands in when the head does not fit the data), or the model's robustness (gradient masking suspected)."""
    from medrep.robustness.outputs import format_eps

    notes = []
    if result.primary != "head":
        head = result.head or {}
        why = (f"the model's head is not used: {head.get('reason')}" if head and not head.get("fits")
               else "the model has no classification head")
        notes.append(f"Accuracy of a {'linear probe' if result.primary == 'probe' else result.primary} fitted on the "
                     f"frozen embeddings of the train split, not of the model's own head ({why}).")
    masked = [format_eps(s["eps"], result.config["norm"]) for s in result.summaries
              if (s.get("attacks") or {}).get("gradient_masking_suspected")]
    if masked:
        notes.append(f"Gradient masking suspected at {', '.join(masked)}: a gradient-free attack broke images the gradient "
                     "attacks could not, so these accuracies overstate the model's robustness.")
    return " ".join(notes)


def _lowest_accuracy(result, objective: str) -> dict[str, Any]:
    """The lowest attacked accuracy over ε (the smallest ε among equals), with its ε as written."""
    from medrep.robustness.outputs import format_eps

    best = min(result.summaries, key=lambda s: (s["metrics"]["attacked_accuracy"]["value"], s["eps"]))
    m = best["metrics"]
    return {"value": m["attacked_accuracy"]["value"], "metric": m["attacked_accuracy"], "clean": m["clean_accuracy"],
            "objective": objective, "eps_text": format_eps(best["eps"], result.config["norm"])}


def _robustness_readings(label: str, objective: str, result) -> list[str]:
    from medrep.robustness.outputs import format_eps

    norm = result.config["norm"]
    low = _lowest_accuracy(result, objective)
    m = result.summaries[-1]["metrics"]
    out = [f"{label}, {objective}: accuracy {_FMT(low['clean'])} on clean images falls to {_FMT(low['metric'])} at "
           f"{low['eps_text']} (its lowest) while the images stay at PSNR {_FMT(m['psnr_mean'])} dB / SSIM "
           f"{_FMT(m['ssim_mean'])} at the largest ε"
           + (f"; {_FMT(m['match_success_rate'])} of attacked images are classified as the target's class."
              if result.config.get("target") else ".")]
    for s in result.summaries:
        att = s.get("attacks") or {}
        if att.get("gradient_masking_suspected"):
            out.append(f"{label}, {objective}, {format_eps(s['eps'], norm)}: gradient masking suspected — the black-box "
                       f"Square attack, which uses no gradients, broke {att['square_only_breaks']} item(s) the gradient "
                       "attacks could not; the gradient attacks' figures overstate this model's robustness.")
    below = sorted({(format_eps(s["eps"], norm), d["sigma"]) for s in result.summaries for d in s["detector"]["by_sigma"]
                    if d["roc_auc"].get("value") is not None and d["roc_auc"]["value"] < 0.5})
    if below:
        where = ", ".join(f"{e} with σ = {sg:g}" for e, sg in below)
        out.append(f"{label}, {objective}: the noise-check detector's ROC AUC is below 0.5 ({where}): noise relabels the "
                   "attacked images less often than the clean ones — the attack pushed them deep into another class "
                   "rather than onto a decision boundary, so they are more stable under noise, and this check would not "
                   "catch them (an AUC below 0.5 is not a better detector read the other way round: it is measured on "
                   "these same images).")
    return out


# The positive control's criterion: at ε = 4/255 the robust model keeps at least 30 points more attacked accuracy than
# the model it was adversarially trained from, with clean accuracy within 10 points of it.
CONTROL_EPS, CONTROL_GAP, CONTROL_CLEAN = 4 / 255, 0.30, 0.10


def _counterpart(encoder) -> str | None:
    """The model a robust control was adversarially trained from (its training record's ``init``), if known."""
    training = (getattr(encoder, "source", None) or {}).get("training") or {}
    init = (training.get("recipe") or {}).get("init")
    return init if isinstance(init, str) else None


def _at_eps(result, eps: float) -> dict[str, Any] | None:
    return next((s["metrics"] for s in result.summaries if abs(s["eps"] - eps) < 1e-9), None)


def control_verdict(control: str, counterpart: str | None, objective: str, attacked: dict[tuple[str, str], Any],
                    audited: list[str]) -> dict[str, Any]:
    """Whether the robust control is told from its fragile counterpart by this audit's attack: at ε = 4/255 (the
    same objective, attack and items) its attacked accuracy is ≥ 30 points above the counterpart's and its clean
    accuracy within 10 points.  ``verdict`` is passes / weak / not judged, with the sentence that says why."""
    from medrep.robustness.outputs import format_eps

    out: dict[str, Any] = {"control": control, "counterpart": counterpart, "objective": objective,
                           "eps": CONTROL_EPS, "required_gap": CONTROL_GAP, "clean_within": CONTROL_CLEAN}
    mine = attacked.get((control, objective))
    theirs = attacked.get((counterpart, objective)) if counterpart in audited else None
    eps_text = format_eps(CONTROL_EPS, "linf")
    if mine is None or theirs is None:
        why = (f"its counterpart {counterpart} is not among the attacked models" if counterpart else
               "the model it was trained from is not recorded in its weights")
        return {**out, "verdict": "not judged", "sentence": f"The positive control {control} is not judged: {why}."}
    if mine.config["norm"] != "linf" or _at_eps(mine, CONTROL_EPS) is None or _at_eps(theirs, CONTROL_EPS) is None:
        return {**out, "verdict": "not judged",
                "sentence": f"The positive control {control} is not judged: its criterion is set at L∞ {eps_text}, "
                            "which is not among this run's budgets."}
    m, t = _at_eps(mine, CONTROL_EPS), _at_eps(theirs, CONTROL_EPS)
    gap = m["attacked_accuracy"]["value"] - t["attacked_accuracy"]["value"]
    clean_gap = abs(m["clean_accuracy"]["value"] - t["clean_accuracy"]["value"])
    passes = gap >= CONTROL_GAP - 1e-9 and clean_gap <= CONTROL_CLEAN + 1e-9
    attack = "+".join(mine.config.get("attack", ["pgd"]))
    head = (f"Positive control at {eps_text} ({objective}, {attack}, {mine.config.get('steps')} steps, "
            f"{m['attacked_accuracy'].get('n')} items): {control} keeps {_FMT(m['attacked_accuracy'])} under attack against "
            f"{counterpart}'s {_FMT(t['attacked_accuracy'])} ({gap * 100:+.1f} points; {CONTROL_GAP * 100:.0f} required), "
            f"clean {_FMT(m['clean_accuracy'])} against {_FMT(t['clean_accuracy'])} ({clean_gap * 100:.1f} points apart; "
            f"at most {CONTROL_CLEAN * 100:.0f} allowed)")
    tail = ("the attacks tell the robust model from the fragile one." if passes else
            "the control is weak: this audit's attacks do not clearly tell the robust model from the fragile one, so "
            "read every model's robustness figures here with that in mind.")
    return {**out, "verdict": "passes" if passes else "weak", "attack": attack, "steps": mine.config.get("steps"),
            "attacked_accuracy": {control: m["attacked_accuracy"], counterpart: t["attacked_accuracy"]},
            "clean_accuracy": {control: m["clean_accuracy"], counterpart: t["clean_accuracy"]},
            "gap": gap, "clean_gap": clean_gap, "sentence": f"{head}: {tail}"}


def _verdict_row(v: dict[str, Any]) -> dict[str, Any]:
    acc, clean = v.get("attacked_accuracy") or {}, v.get("clean_accuracy") or {}
    c, f = v["control"], v["counterpart"]
    return {"control": c, "counterpart": f or "–", "objective": v["objective"], "ε": "4/255",
            "attacked (control)": acc.get(c), "attacked (counterpart)": acc.get(f),
            "gap (points)": round(v["gap"] * 100, 1) if "gap" in v else None,
            "clean (control)": clean.get(c), "clean (counterpart)": clean.get(f), "verdict": v["verdict"]}


def _control_reading(control: str, lowest: dict[str, dict[str, Any]], models: list[str]) -> str:
    low = lowest.get(control)
    if low is None:
        return f"{control} (positive control) gave no result."
    others = ", ".join(f"{m} {_FMT(lowest[m]['metric'])}" for m in models if m in lowest)
    weak = _weak_control_note(control, lowest, models)
    return (f"{control} is a positive control (adversarially trained): its lowest attacked accuracy is {_FMT(low['metric'])} "
            f"({low['objective']}, {low['eps_text']}) against {others or 'no other model'}; the suite tells a robust "
            "model from a fragile one when the control stays well above the others." + (f" {weak}" if weak else ""))


def _weak_control_note(control: str, lowest: dict[str, dict[str, Any]], models: list[str]) -> str:
    """A positive control that does not stand above the audited models (its interval reaches theirs) shows nothing
    about the attack: said beside its figure, since the figure alone reads as 'the robust model is robust'."""
    low = lowest.get(control)
    others = [lowest[m]["metric"] for m in models if m in lowest]
    if low is None or not others:
        return ""
    ceiling = max((m.get("high") if m.get("high") is not None else m["value"]) for m in others)
    floor = low["metric"].get("low") if low["metric"].get("low") is not None else low["value"]
    if floor > ceiling:
        return ""
    return (f"Weak control: {control}'s lowest attacked accuracy ({_FMT(low['metric'])}) does not stand clear of the "
            "audited models' (the 95% intervals meet), so this run does not show that the attack tells a robust model "
            "from a fragile one; the other models' drops may partly reflect the attack's settings.")


def _runs(m: dict) -> str:
    sd = m.get("shuffled_accuracy_sd")
    n = sd.get("n") if isinstance(sd, dict) else getattr(sd, "n", None)
    return str(n) if n else "several"


def _section(key: str, intro: str, readings: list[str], figures: list[Figure], tables: list[Table]) -> Section:
    """A stage's section: its title, the stage's general reading followed by one paragraph per model or pair."""
    return Section(key, TITLES[key], intro + "\n\n" + "\n\n".join(readings), figures, tables)


def _caption(key: str) -> str:
    """A figure's key from an analysis writer as words: ``tsne:demo-vit`` → "t-SNE of demo-vit's test embeddings"."""
    from medrep.features.registry import PROJECTIONS

    kind, _, name = key.partition(":")
    projection = PROJECTIONS.meta(kind, "title", None) if name and kind in PROJECTIONS.names() else None
    if projection:
        return (f"{projection} of {name}'s test embeddings, coloured by class (a non-linear 2-D map: the sizes of the "
                "clusters and the distances between them mean little)")
    words = {"centroid_cosine": f"cosine similarity between the class centroids of {name}'s embeddings",
             "forest": f"{name}: each subgroup's figure with its 95% interval (dashed line: the whole test set)",
             "cka": "CKA similarity between the models' embeddings (* p < 0.01 against a permutation null)",
             "overlay_flip_rates": "text-overlay test: how often the probe's answer flips, and how far the embedding moves, "
                                   "when each word is written on the images",
             "overlay_examples": "text-overlay test: test images with each word written on them",
             "accuracy_vs_anchors": "accuracy against the number of anchor pairs"}
    return words.get(kind, key.replace("_", " "))


def run_audit(config: dict[str, Any], out: str | Path, cache_dir: str | None = None, use_cache: bool = True,
              device: str = "auto", arguments: dict[str, Any] | None = None, resume: bool = False) -> dict[str, Any]:
    """Run the enabled analyses and write report.html, results.json, scorecard.csv, tables/*.csv and manifest.json
    into ``out``; returns the results (the content of results.json).

    Attacks and explanations keep every finished batch under ``out/<stage>/…/partial/`` (embeddings live
    in the cache): after an interruption ``resume=True`` continues from them and gives the results of an
    uninterrupted run.  They are removed once the report is written."""
    from medrep import __version__
    from medrep.features.cache import EmbeddingCache

    config = validate_config(config)
    out = Path(out)
    earlier = sorted(out.rglob("partial/run.json")) if out.exists() else []
    if earlier and not resume:
        raise MedrepError(f"holds the unfinished work of an earlier audit ({len(earlier)} partial result set(s)); pass "
                          "--resume to continue it, or choose another --out", where=str(out))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    audit = Audit(config, out, EmbeddingCache(cache_dir, enabled=use_cache), device, resume=resume)
    _log(f"loading data and {len(config['models'])} model(s) …")
    audit.load()
    for note in audit.head_notes().values():  # said once, here; the report's robustness reading repeats it
        _log(_markup_escape(note))
    analyses = config["analyses"]
    # Features first: it fills the embedding cache that the other analyses read.
    run = [k for k in ("features", "robustness", "explain", "alignment") if analyses[k]["enabled"]]
    if analyses["subgroups"]["enabled"] and config["by"]:
        run.append("subgroups")  # last: it gathers the attacks' and explanations' breakdowns too
    for i, key in enumerate(run, 1):
        audit.stage(key, getattr(audit, key), i, len(run))
    order = {"robustness": 0, "explain": 1, "features": 2, "alignment": 3, "subgroups": 4}
    audit.sections.sort(key=lambda s: order.get(s.id, 9))
    sections = [audit.scorecard_section(), *audit.sections]
    table_index = write_table_csvs(out / "tables", sections)
    manifest = build_manifest("audit", arguments or {}, seeds={"seed": config["seed"]},
                              data=audit.dataset.describe(), models={s: e.describe() for s, e in audit._encoders.items()},
                              text=getattr(audit.text_encoder, "name", None), timings=audit.timings, auto_split=audit.auto_split,
                              total_seconds=round(time.time() - t0, 1), config=config)
    results = {"schema_version": RESULTS_SCHEMA_VERSION, "kind": "audit", "medrep_version": __version__,
               "title": config["title"], "config": config,
               "sections": [{"id": s.id, "title": s.title, "error": s.error} for s in audit.sections],
               "scorecard": {s: {k: v.get("metric") if isinstance(v, dict) else v for k, v in card.items()}
                             for s, card in audit.scorecard.items()},
               "tables": table_index,
               "heads": {s: e.head_fit(audit.dataset.classes).to_dict() for s, e in audit._encoders.items() if e.has_head},
               **audit.results}
    results = finite_json(results)  # the returned dict is what results.json holds
    write_json_atomic(out / "results.json", results)
    _write_scorecard_csv(out / "scorecard.csv", audit.scorecard)
    write_manifest(out, manifest)
    report = write_report(out / "report.html", config["title"],
                          f"data: {config['data']} · models: {', '.join(config['models'])} · text: {config['text'] or 'none'}",
                          sections, manifest)
    for marker in out.rglob("partial/run.json"):
        discard_partials(marker.parent.parent)
    _log(f"report: {_markup_escape(str(report))} ({manifest['total_seconds']} s)")
    return results


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return csv_safe(value)  # a label such as "=HYPERLINK(…)" must not run as a spreadsheet formula


def _csv_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Metric cells {value, low, high, n} become four columns: name, name_low, name_high, name_n."""
    flat = []
    for row in rows:
        f: dict[str, Any] = {}
        for col, v in row.items():
            if isinstance(v, dict) and "value" in v:
                f[col] = v.get("value")
                for part in ("low", "high", "n"):
                    f[f"{col}_{part}"] = v.get(part)
            else:
                f[col] = v
        flat.append(f)
    cols: list[str] = []
    for f in flat:
        cols += [c for c in f if c not in cols]
    return cols, [[_csv_cell(f.get(c)) for c in cols] for f in flat]


def write_table_csvs(folder: Path, sections: list[Section]) -> list[dict[str, Any]]:
    """One CSV per table shown in the report, ``<section>-<n>-<slug>.csv`` (n counts from 1 within a section);
    each Table learns its file name (the report prints it under the table).  Returns the index for results.json."""
    index = []
    for s in sections:
        for n, t in enumerate(s.tables, 1):
            if not t.rows:
                continue
            name = f"{slug(s.id, 24)}-{n}-{slug(t.title.lower().replace(' ', '-'), 48)}.csv"
            cols, rows = _csv_rows(t.rows)
            write_csv_atomic(folder / name, cols, rows)
            t.csv = f"{folder.name}/{name}"
            index.append({"section": s.id, "title": t.title, "csv": t.csv, "rows": len(rows), "columns": cols})
    return index


def _write_scorecard_csv(path: Path, scorecard: dict[str, dict[str, Any]]) -> None:
    """Long format: one row per model and question (value, 95% interval, n, context)."""
    rows = []
    for spec, card in scorecard.items():
        for key, (_, headline) in QUESTIONS.items():
            entry = card.get(key)
            if not entry:
                continue
            m = entry.get("metric") if isinstance(entry.get("metric"), dict) else {"value": entry.get("metric")}
            rows.append([_csv_cell(spec), key, headline, *[_csv_cell(m.get(k)) for k in ("value", "low", "high", "n")],
                         _csv_cell(entry.get("text"))])
    write_csv_atomic(path, ["model", "question", "headline", "value", "low", "high", "n", "context"], rows)
