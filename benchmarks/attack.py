"""Throughput of medrep's representation attack against torchattacks' PGD and ART's FeatureAdversaries.

Same model, batch, number of steps and L∞ budget for all three:
- medrep: ``LinfPGD`` on the collide loss ½‖f(x′) − f(x_tg)‖² (representation = the encoder's default);
- torchattacks: ``PGD`` on the logits' cross-entropy (its only loss), no random start;
- ART: ``FeatureAdversariesPyTorch`` (plain PGD mode) pulling the same representation onto the guide images, twice:
  on the network with its parameters frozen (as medrep holds it; ART's best case) and with them trainable (as
  ``timm.create_model`` or ``torch.load`` hand a model to a user, and as ART's own examples use it).

    python benchmarks/attack.py [--model demo-vit] [--batch 32] [--attack-steps 10] [--repeats 3] [--threads 2]

Prints images·steps per second and the ratio of medrep's throughput to each peer's (best of the repeats).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model spec (default: demo-vit if its weights exist, else demo-cnn)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--attack-steps", type=int, default=10, help="attack iterations")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--eps", type=float, default=4 / 255)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.model, args.batch, args.attack_steps, args.repeats, args.eps)


if __name__ == "__main__":
    main()
