"""Throughput of medrep's representation attack against torchattacks' PGD and ART's FeatureAdversaries.

Same model, batch, number of steps and L∞ budget for all three:
- medrep: ``LinfPGD`` on the collide loss ½‖f(x′) − f(x_tg)‖² (representation = the encoder's default);
- torchattacks: ``PGD`` on the logits' cross-entropy (its only loss), no random start;
- ART: ``FeatureAdversariesPyTorch`` (plain PGD mode) pulling the same representation onto the guide images, twice:
  on the network with its parameters frozen (as medrep holds it; ART's best case) and with them trainable (as
  ``timm.create_model`` or ``torch.load`` hand a model to a user, and as ART's own examples use it).

    python benchmarks/attack.py [--model demo-vit] [--batch 32] [--attack-steps 10] [--repeats 3] [--threads 2]

Prints images·steps per second and the ratio of medrep's throughput to each peer's (best of the repeats).

``--equal-strength`` measures *time to equal strength* instead: for collide (demo-vit, ``--pairs`` pairs, ε = 4/255)
the seconds medrep's APGD with early exit needs to reach the attacked accuracy that ART's FeatureAdversaries reaches
in 50 steps, against ART's own time (goal ≥ 3×), and the same against medrep's own 50-step PGD (goal ≥ 2×), with the
forward + backward passes each used.  APGD's step count is searched over 5, 10, 20, 30, 50 steps; the time reported
is that of the first count that reaches the accuracy (the search's total is printed too).
"""
from __future__ import annotations

import argparse
import copy
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import medrep  # noqa: E402,F401  (repairs torchvision before timm is imported)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common import EncoderCall, best_of  # noqa: E402


def run(model: str | None = None, batch: int = 32, steps: int = 10, repeats: int = 3, eps: float = 4 / 255,
        verbose: bool = True) -> dict:
    """Best-of-``repeats`` seconds of each attack and medrep's speed-up over each peer (their time / ours)."""
    from medrep.data import load_dataset
    from medrep.models import load_encoder
    from medrep.models.demo import weights_path
    from medrep.robustness import Collide, LinfPGD, Representation, representation_loss

    spec = model
    if spec is None:
        try:
            spec = "demo-vit" if weights_path("demo-vit").exists() else "demo-cnn"
        except Exception:
            spec = "demo-cnn"
    enc = load_encoder(spec)
    test = load_dataset(f"demo?n_train=0&n_val=0&n_test={2 * batch}").split("test")
    imgs = torch.stack([test[i].image for i in range(2 * batch)]).to(enc.device)
    x, guide = imgs[:batch], imgs[batch:]
    y = torch.as_tensor(test.labels[:batch], device=enc.device)
    alpha = 2.5 * eps / steps
    with torch.no_grad():
        target = enc.embed(guide)
    work = batch * steps
    header = (f"model {enc.name}, batch {batch}, {steps} steps, eps {eps * 255:g}/255 L∞, "
              f"{torch.get_num_threads()} threads, device {enc.device}")
    if verbose:
        print(header)

    attack = LinfPGD(steps=steps, step_size=alpha)
    loss_fn = representation_loss(enc, Representation(), Collide(), target)
    t_medrep = best_of(lambda: attack.run(loss_fn, x, eps, final_loss=False), repeats)

    def floor():  # the network alone: one forward + backward of the same loss per step, nothing else
        for _ in range(steps):
            xx = x.detach().clone().requires_grad_(True)
            torch.autograd.grad(loss_fn(xx).sum(), xx)

    t_floor = best_of(floor, repeats)
    rows = [("medrep LinfPGD (collide, representation)", t_medrep)]
    times = {"medrep": t_medrep}
    if enc.has_head:
        import torchattacks

        ta = torchattacks.PGD(EncoderCall(enc).eval(), eps=eps, alpha=alpha, steps=steps, random_start=False)
        times["torchattacks"] = best_of(lambda: ta(x, y), repeats)
        rows.append(("torchattacks PGD (logit cross-entropy)", times["torchattacks"]))
    elif verbose:
        print("(model has no head: torchattacks needs logits, skipped)")

    from art.attacks.evasion import FeatureAdversariesPyTorch
    from art.estimators.classification import PyTorchClassifier

    def art_seconds(encoder) -> tuple[float, int]:
        """ART's time on ``encoder``, and how many forward hooks ART left on the network afterwards."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = nn.Sequential(EncoderCall(encoder, "embed")).eval()  # layer 0 = the representation
            est = PyTorchClassifier(net, loss=nn.MSELoss(), input_shape=tuple(x.shape[1:]),
                                    nb_classes=int(target.shape[1]), clip_values=(0.0, 1.0),
                                    device_type="gpu" if enc.device.type == "cuda" else "cpu")
            fa = FeatureAdversariesPyTorch(est, delta=eps, layer=0, max_iter=steps, step_size=alpha,
                                           batch_size=batch, verbose=False)
            xn, gn = x.cpu().numpy(), guide.cpu().numpy()
            seconds = best_of(lambda: fa.generate(xn, gn), repeats)
            hooks = sum(len(m._forward_hooks) for m in net.modules())
            for m in net.modules():  # ART registers one per get_activations call and never removes them
                m._forward_hooks.clear()
        return seconds, hooks

    # ART on the network as medrep holds it (parameters frozen): ART's best case.
    times["art"], art_hooks = art_seconds(enc)
    rows.append(("ART FeatureAdversariesPyTorch (PGD mode)", times["art"]))
    # ART on the same network as timm / torch hand it to a user (parameters trainable): ART's loss.backward()
    # then also computes, and leaves on the model, a gradient for every weight, through both the adversarial
    # and the guide branch.
    trainable = copy.deepcopy(enc)
    trainable.requires_grad_(True)
    times["art_trainable"], _ = art_seconds(trainable)
    left_grads = sum(p.grad is not None for p in trainable.parameters())
    rows.append(("ART, parameters trainable (as loaded)", times["art_trainable"]))
    del trainable

    if verbose:
        print(f"{'attack':<44}{'time s':>9}{'img·steps/s':>13}{'medrep ×':>10}")
        for name, t in rows:
            print(f"{name:<44}{t:>9.3f}{work / t:>13.1f}{t / t_medrep:>10.2f}")
        print("medrep × = that attack's time / medrep's time (goal: ≥ 1.0 vs torchattacks, ≥ 3 vs ART)")
        print(f"network floor (forward + backward per step, nothing else): {t_floor:.3f} s = "
              f"{t_floor / t_medrep:.0%} of medrep's time")
        print(f"ART re-embeds the guide images at every step (two forward passes per step), left {art_hooks} forward "
              f"hooks on the network and, with trainable parameters, a .grad on {left_grads} parameter tensors")
    _ = np  # numpy is ART's interface
    return {"model": enc.name, "batch": batch, "steps": steps, "threads": torch.get_num_threads(), "seconds": times,
            "ratios": {k: v / t_medrep for k, v in times.items() if k != "medrep"}, "setting": header,
            "floor": t_floor, "art_hooks_left": art_hooks, "art_grads_left": left_grads}


def equal_strength(model: str = "demo-vit", pairs: int = 200, eps: float = 4 / 255, steps: int = 50, batch: int = 50,
                   verbose: bool = True) -> dict:
    """Time to equal strength: medrep's APGD + early exit against ART's and medrep's PGD, one process, same pairs."""
    import time

    from medrep.data import load_dataset
    from medrep.models import load_encoder
    from medrep.robustness import Collide, Representation, build_attack, representation_loss
    from medrep.robustness.classifiers import HeadClassifier
    from medrep.robustness.criteria import TargetMatched
    from medrep.robustness.run import draw_pairs

    enc = load_encoder(model)
    test = load_dataset("demo").split("test").limit(pairs, seed=0)
    labels = np.asarray(test.labels)
    tidx, tlab = draw_pairs(labels, 0, True, len(test.classes), "demo")
    x_all = torch.stack([test[i].image for i in range(len(test))])
    clf = HeadClassifier(enc)

    def medrep_run(name: str, n_steps: int, early: bool) -> tuple[float, float, int]:
        t0, correct, passes = time.perf_counter(), 0, 0
        for lo in range(0, len(test), batch):
            x, xt = x_all[lo:lo + batch], x_all[tidx[lo:lo + batch]]
            with torch.no_grad():
                zt = enc.embed(xt)
            stop = TargetMatched(clf, tlab[lo:lo + batch]) if early else None
            out = build_attack(name, "linf", n_steps, early_stop=stop).run(
                representation_loss(enc, Representation(), Collide(), zt), x, eps, final_loss=False)
            correct += int((clf.predict(out.x_adv) == labels[lo:lo + batch]).sum())
            passes += out.passes.gradient
        return time.perf_counter() - t0, correct / len(test), passes

    def art_run() -> tuple[float, float, int]:
        from art.attacks.evasion import FeatureAdversariesPyTorch
        from art.estimators.classification import PyTorchClassifier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = nn.Sequential(EncoderCall(enc, "embed")).eval()
            est = PyTorchClassifier(net, loss=nn.MSELoss(), input_shape=tuple(x_all.shape[1:]), nb_classes=2,
                                    clip_values=(0.0, 1.0), device_type="gpu" if enc.device.type == "cuda" else "cpu")
            fa = FeatureAdversariesPyTorch(est, delta=eps, layer=0, max_iter=steps, step_size=2.5 * eps / steps,
                                           batch_size=batch, verbose=False)
            t0 = time.perf_counter()
            adv = fa.generate(x_all.numpy(), x_all[tidx].numpy())
            seconds = time.perf_counter() - t0
            for m in net.modules():
                m._forward_hooks.clear()
        acc = float((clf.predict(torch.as_tensor(adv)) == labels).mean())
        return seconds, acc, 2 * steps * len(test)  # two forward passes (guide re-embedded) and one backward per step

    t_art, acc_art, passes_art = art_run()
    t_pgd, acc_pgd, passes_pgd = medrep_run("pgd", steps, False)
    rows = {"art": {"seconds": t_art, "attacked_accuracy": acc_art, "gradient_passes": passes_art},
            "pgd": {"seconds": t_pgd, "attacked_accuracy": acc_pgd, "gradient_passes": passes_pgd}}
    search, found = [], {}
    for n in (5, 10, 20, 30, 50):
        t, acc, passes = medrep_run("apgd", n, True)
        search.append({"steps": n, "seconds": t, "attacked_accuracy": acc, "gradient_passes": passes})
        for ref in ("art", "pgd"):
            if ref not in found and acc <= rows[ref]["attacked_accuracy"]:
                found[ref] = search[-1]
        if len(found) == 2:
            break
    ratios = {ref: rows[ref]["seconds"] / found[ref]["seconds"] if ref in found else None for ref in ("art", "pgd")}
    res = {"model": enc.name, "pairs": len(test), "eps": eps, "steps": steps, "threads": torch.get_num_threads(),
           "references": rows, "apgd_search": search, "apgd_match": found, "ratios": ratios}
    if verbose:
        print(f"time to equal strength, collide on {enc.name}, {len(test)} pairs, ε = {eps * 255:g}/255, "
              f"{torch.get_num_threads()} threads")
        for ref, r in rows.items():
            print(f"  {ref:>4} {steps} steps: attacked accuracy {r['attacked_accuracy']:.3f} in {r['seconds']:.1f} s "
                  f"({r['gradient_passes']:,} item passes)")
        for r in search:
            print(f"  apgd + early exit, {r['steps']:>2} steps: {r['attacked_accuracy']:.3f} in {r['seconds']:.1f} s "
                  f"({r['gradient_passes']:,} forward+backward item passes)")
        for ref in ("art", "pgd"):
            m = found.get(ref)
            print(f"  vs {ref}: " + (f"{ratios[ref]:.2f}× ({m['steps']} APGD steps)" if m else "APGD did not reach it"))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model spec (default: demo-vit if its weights exist, else demo-cnn)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--attack-steps", type=int, default=10, help="attack iterations")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--eps", type=float, default=4 / 255)
    ap.add_argument("--equal-strength", action="store_true", help="time to equal strength (APGD + early exit vs ART / PGD)")
    ap.add_argument("--pairs", type=int, default=200, help="pairs for --equal-strength")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.equal_strength:
        import json

        print(json.dumps(equal_strength(args.model or "demo-vit", args.pairs, args.eps), default=float))
        return
    run(args.model, args.batch, args.attack_steps, args.repeats, args.eps)


if __name__ == "__main__":
    main()
