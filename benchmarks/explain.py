"""Speed of medrep's explanation code against the reference implementations (same model, same batch).

    python benchmarks/explain.py [--model demo-vit] [--batch 16] [--maps 256] [--repeats 3]

Prints four ratios (reference time / medrep time, higher is better):
  1. Grad-CAM on ViT tokens vs pytorch-grad-cam's GradCAM (goal ≥ 1×);
  2. Chefer gradient-weighted rollout, one batch vs a batch-1 loop (goal ≥ 4× at batch 16);
  3. pointing game + deletion AUC on N maps vs Quantus' PointingGame + PixelFlipping (goal ≥ 10×);
  4. integrated gradients (same steps, Gauss-Legendre rule, same internal batch) vs captum (no goal set).
``run(...)`` returns the same figures as a dict (benchmarks/run_all.py uses it).
Timings are best-of-``repeats`` wall-clock seconds on this machine; they are never asserted in tests.
"""
from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEDREP_QUIET", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import medrep  # noqa: E402,F401  (repairs torchvision before timm / pytorch-grad-cam are imported)
from _common import EncoderCall, best_of  # noqa: E402


def load_model(spec: str):
    from medrep.models import load_encoder

    try:
        return load_encoder(spec)
    except Exception as err:  # demo weights not built yet: a ViT of the same geometry with random weights
        print(f"({spec} unavailable: {err}; using a random 64-px timm ViT)")
        torch.manual_seed(0)
        return load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=64&patch_size=8&depth=6&num_classes=3")


def run(model: str = "demo-vit", batch: int = 16, maps: int = 256, steps: int = 16, repeats: int = 3,
        ig_steps: int = 32, parts: tuple[str, ...] = ("gradcam", "chefer", "quantus", "ig"), verbose: bool = True) -> dict:
    from medrep.data import load_dataset
    from medrep.explain.methods import explain
    from medrep.explain.targets import Target

    say = print if verbose else (lambda *a, **k: None)
    enc = load_model(model)
    data = load_dataset("demo").split("test")
    masked = [i for i in range(len(data)) if data[i].mask.any()]
    items = [data[masked[i % len(masked)]] for i in range(max(batch, maps))]
    x_all = torch.stack([it.image for it in items])
    y_all = torch.tensor([it.label for it in items])
    s_all = torch.stack([it.mask for it in items])
    x, y = x_all[:batch], y_all[:batch]
    target = Target("class", y)
    out: dict = {"model": enc.name, "batch": batch, "threads": torch.get_num_threads()}
    say(f"model {enc.name}, batch {batch}, {torch.get_num_threads()} threads")

    if "gradcam" in parts:  # 1. Grad-CAM
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        grid = enc.token_grid

        def reshape(t):
            return grid.to_map(grid.patch_tokens(t)).permute(0, 3, 1, 2)

        layer = enc.module.blocks[-1].norm1
        ours = lambda: explain(enc, x, "gradcam", target)  # noqa: E731

        def theirs():
            with GradCAM(model=EncoderCall(enc), target_layers=[layer], reshape_transform=reshape) as cam:
                cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(c)) for c in y])

        t_ours, t_ref = best_of(ours, repeats), best_of(theirs, repeats)
        out["gradcam"] = {"medrep": t_ours, "reference": t_ref, "ratio": t_ref / t_ours}
        say(f"1. Grad-CAM       medrep {t_ours:.3f}s  pytorch-grad-cam {t_ref:.3f}s  ratio {t_ref / t_ours:.2f}x (goal >= 1x)")

    if "chefer" in parts:  # 2. Chefer batched vs batch-1 loop
        batched = lambda: explain(enc, x, "chefer", target)  # noqa: E731

        def loop():
            for i in range(len(x)):
                explain(enc, x[i:i + 1], "chefer", target.index(slice(i, i + 1)))

        t_b, t_l = best_of(batched, repeats), best_of(loop, repeats)

        def net(xb, yb):  # the network alone: forward + backward of the class logit w.r.t. the pixels
            xx = xb.clone().requires_grad_(True)
            torch.autograd.grad(enc.logits(xx).gather(1, yb[:, None]).sum(), xx)

        t_nb = best_of(lambda: net(x, y), repeats)
        t_n1 = best_of(lambda: [net(x[i:i + 1], y[i:i + 1]) for i in range(len(x))], repeats)
        out["chefer"] = {"medrep": t_b, "reference": t_l, "ratio": t_l / t_b, "network_batch_gain": t_n1 / t_nb}
        say(f"2. Chefer         batch {t_b:.3f}s  batch-1 loop {t_l:.3f}s  ratio {t_l / t_b:.2f}x (goal >= 4x at batch {batch}); "
            f"the network's own forward+backward gains {t_n1 / t_nb:.2f}x from batching here")

    if "quantus" in parts:  # 3. pointing game + deletion AUC on N maps vs Quantus
        out["quantus"] = _quantus(enc, x_all, y_all, s_all, maps, steps, repeats)
        q = out["quantus"]
        say(f"3. pointing+deletion on {maps} maps  medrep {q['medrep']:.2f}s  Quantus {q['reference']:.2f}s  "
            f"ratio {q['ratio']:.1f}x (goal >= 10x); the {steps + 1} forward passes per map alone take {q['floor']:.2f}s")

    if "ig" in parts:  # 4. integrated gradients vs captum
        from captum.attr import IntegratedGradients

        from medrep.explain.methods import integrated_gradients

        ibs = 4 * batch
        ours = lambda: integrated_gradients(enc, x, target, steps=ig_steps, internal_batch_size=ibs)  # noqa: E731
        ig_ref = IntegratedGradients(EncoderCall(enc).eval())
        theirs = lambda: ig_ref.attribute(x, baselines=0.0, target=y, n_steps=ig_steps,  # noqa: E731
                                          method="gausslegendre", internal_batch_size=ibs)
        diff = float((ours() - theirs()).abs().max())
        t_ours, t_ref = best_of(ours, repeats), best_of(theirs, repeats)
        out["ig"] = {"medrep": t_ours, "reference": t_ref, "ratio": t_ref / t_ours, "max_abs_diff": diff}
        say(f"4. IG ({ig_steps} steps) medrep {t_ours:.3f}s  captum {t_ref:.3f}s  ratio {t_ref / t_ours:.2f}x "
            f"(no goal set; max |Δ attribution| {diff:.1e})")
    return out


def _quantus(enc, x_all, y_all, s_all, n: int, steps: int, repeats: int) -> dict:
    import quantus

    from medrep.explain.faithfulness import deletion_auc
    from medrep.explain.methods import explain
    from medrep.explain.scores import pointing_game
    from medrep.explain.targets import Target

    if not hasattr(np, "trapz"):  # Quantus 0.6 calls np.trapz, removed in NumPy 2
        np.trapz = np.trapezoid

    xs, ys, ss = x_all[:n], y_all[:n], s_all[:n]
    maps = explain(enc, xs[: min(n, 64)], "center", None).repeat((n + 63) // 64, 1, 1)[:n]
    maps = maps + 1e-3 * torch.rand(maps.shape, generator=torch.Generator().manual_seed(0))  # break ties
    h, w = maps.shape[-2:]
    tgt = Target("class", ys)

    def ours3():  # model batches of 64 rows, as Quantus' below
        pointing_game(maps, ss)
        deletion_auc(enc, xs, maps, tgt, steps=steps, baseline="zero", batch_size=64)

    def floor():  # the forward passes alone: steps + 1 per image (medrep scores the unperturbed image too)
        with torch.no_grad():
            for _ in range(steps + 1):
                for lo in range(0, n, 64):
                    enc.logits(xs[lo:lo + 64])

    model = EncoderCall(enc).eval()
    xn, yn, an, sn = xs.numpy(), ys.numpy(), maps[:, None].numpy(), ss[:, None].numpy().astype(float)

    def quantus3():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantus.PointingGame(disable_warnings=True)(model=model, x_batch=xn, y_batch=yn, a_batch=an, s_batch=sn,
                                                          device="cpu")
            quantus.PixelFlipping(features_in_step=h * w // steps, perturb_baseline="black", return_auc_per_sample=True,
                                  disable_warnings=True)(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu",
                                                         batch_size=64)

    t_o = best_of(ours3, repeats)
    t_q = best_of(quantus3, 1)  # one run: Quantus is the slow side
    t_f = best_of(floor, 1)
    return {"medrep": t_o, "reference": t_q, "ratio": t_q / t_o, "maps": n, "floor": t_f}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="demo-vit")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--maps", type=int, default=256)
    p.add_argument("--deletion-steps", type=int, default=16, help="deletion steps (Quantus: H·W/steps pixels per step)")
    p.add_argument("--ig-steps", type=int, default=32, help="integrated-gradients steps (both sides)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    run(args.model, args.batch, args.maps, args.deletion_steps, args.repeats, args.ig_steps)


if __name__ == "__main__":
    main()
