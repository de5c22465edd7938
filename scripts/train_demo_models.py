"""Train the two demo encoders on lesion phantoms and write their weights into the package.

Seeded and deterministic on one machine:
`python scripts/train_demo_models.py [--model demo-vit|demo-cnn|demo-cnn-robust|all] [--threads N]`.
Training data is a separate phantom draw (seed 1, 15,000 images) so the shipped test split (seed 0)
stays unseen.  On a 2-core CPU: about 2 min for the CNN, about 25 min for the ViT (3 epochs).

``demo-cnn-robust`` is the robust positive control: demo-cnn's weights fine-tuned by PGD adversarial
training (Madry et al.: every update on L∞ PGD examples, 2 steps from a random start, ε = 8/255 in raw
[0, 1] pixels, ramped up over the first third of the steps), about 12 min at one thread.  It needs the
demo-cnn weights, so `all` trains it last.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from medrep.data.phantoms import PhantomConfig, load_phantoms
from medrep.models.demo import BUILDERS, DEMO_PREPROCESSING, WEIGHTS_DIR

RECIPES = {
    "demo-cnn": dict(n_train=6000, epochs=6, lr=2e-3, batch=64, weight_decay=0.05),
    "demo-vit": dict(n_train=15000, epochs=3, lr=5e-4, batch=64, weight_decay=0.05),
    # fine-tuned from demo-cnn (init), every batch replaced by its PGD adversarial examples
    "demo-cnn-robust": dict(n_train=4000, epochs=2, lr=1e-3, batch=64, weight_decay=0.05, init="demo-cnn",
                            adv_eps=8 / 255, adv_steps=2, adv_step=0.6 * 8 / 255, adv_ramp=1 / 3),
}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip_h = torch.rand(x.shape[0], generator=gen) < 0.5
    flip_v = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(-1), x)
    return torch.where(flip_v[:, None, None, None], x.flip(-2), x)


def pgd_examples(model, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step: float,
                 gen: torch.Generator) -> torch.Tensor:
    """L∞ PGD on the cross-entropy from a uniform random start, in raw [0, 1] pixels (the model normalises
    inside), with the batch-norm statistics frozen while the examples are made."""
    was_training = model.training
    model.eval()
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    delta = (x + delta).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(DEMO_PREPROCESSING(x + delta)), y)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + step * grad.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    model.train(was_training)
    return (x + delta).detach()


def evaluate_robust(model, images, labels, eps: float, steps: int = 10, n: int = 200) -> float:
    """Accuracy under a 10-step L∞ PGD on the cross-entropy (a quick check; the suite's APGD + Square is stronger)."""
    x, y = images[:n].float() / 255, labels[:n]
    adv = pgd_examples(model, x, y, eps, steps, 2.5 * eps / steps, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return (model(DEMO_PREPROCESSING(adv)).argmax(1) == y).float().mean().item()


def evaluate(model, images, labels, batch=256) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = DEMO_PREPROCESSING(images[i : i + batch].float() / 255)
            correct += (model(x).argmax(1) == labels[i : i + batch]).sum().item()
    return correct / len(images)


def train(name: str, seed: int = 0) -> dict:
    recipe = RECIPES[name]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_set = load_phantoms(PhantomConfig(n_train=recipe["n_train"], n_val=0, n_test=0, seed=1)).split("train")
    test_set = load_phantoms().split("test")
    xs, ys = train_set.images, torch.as_tensor(train_set.labels)
    xt, yt = test_set.images, torch.as_tensor(test_set.labels)
    model = BUILDERS[name]()
    if "init" in recipe:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(WEIGHTS_DIR / f"{recipe['init']}.safetensors")))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    steps = recipe["epochs"] * (len(xs) // recipe["batch"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps, pct_start=0.15)
    t0 = time.time()
    for epoch in range(recipe["epochs"]):
        model.train()
        order = torch.randperm(len(xs), generator=gen)
        for i in range(len(xs) // recipe["batch"]):
            idx = order[i * recipe["batch"] : (i + 1) * recipe["batch"]]
            x = augment(xs[idx].float() / 255, gen)
            if "adv_eps" in recipe:
                ramp = min(1.0, (epoch * (len(xs) // recipe["batch"]) + i + 1) / (recipe["adv_ramp"] * steps))
                scale = ramp * recipe["adv_eps"]
                x = pgd_examples(model, x, ys[idx], scale, recipe["adv_steps"], recipe["adv_step"] * ramp, gen)
            loss = F.cross_entropy(model(DEMO_PREPROCESSING(x)), ys[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, xt, yt)
        print(f"{name} epoch {epoch + 1}/{recipe['epochs']}: loss {loss.item():.3f}, test accuracy {acc:.3f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    robust = {f"{k}/255": evaluate_robust(model, xt, yt, k / 255) for k in (2, 4, 8)} if "adv_eps" in recipe else None
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(WEIGHTS_DIR / f"{name}.safetensors"))
    meta = {"recipe": recipe, "seed": seed, "test_accuracy": acc, "train_seconds": round(time.time() - t0, 1),
            "train_data": "phantoms seed=1", "test_data": "phantoms seed=0 test split (600)",
            "threads": torch.get_num_threads()}
    if robust is not None:
        meta["pgd10_accuracy_first_200_test"] = robust
    (WEIGHTS_DIR / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="all", choices=["all", *RECIPES])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    for name in (RECIPES if args.model == "all" else [args.model]):
        print(json.dumps(train(name, args.seed)))
