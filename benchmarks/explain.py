"""Speed of medrep's explanation code against the reference implementations (same model, same batch).

    python benchmarks/explain.py [--model demo-vit] [--batch 16] [--maps 256] [--repeats 3]

Prints three ratios (reference time / medrep time, higher is better):
  1. Grad-CAM on ViT tokens vs pytorch-grad-cam's GradCAM (goal ≥ 1×);
  2. Chefer gradient-weighted rollout, one batch vs a batch-1 loop (goal ≥ 4× at batch 16);
  3. pointing game + deletion AUC on N maps vs Quantus' PointingGame + PixelFlipping (goal ≥ 10×).
Timings are best-of-``repeats`` wall-clock seconds on this machine; they are never asserted in tests.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEDREP_QUIET", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import medrep  # noqa: E402,F401  (repairs torchvision before timm / pytorch-grad-cam are imported)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class Logits(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder.logits(x)


def load_model(spec: str):
    from medrep.models import load_encoder

    try:
        return load_encoder(spec)
    except Exception as err:  # demo weights not built yet: a ViT of the same geometry with random weights
        print(f"({spec} unavailable: {err}; using a random 64-px timm ViT)")
        torch.manual_seed(0)
        return load_encoder("timm:vit_tiny_patch16_224?pretrained=false&img_size=64&patch_size=8&depth=6&num_classes=3")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="demo-vit")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--maps", type=int, default=256)
    p.add_argument("--steps", type=int, default=16, help="deletion steps (Quantus: H·W/steps pixels per step)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from medrep.data import load_dataset
    from medrep.explain.faithfulness import deletion_auc
    from medrep.explain.methods import explain
    from medrep.explain.scores import pointing_game
    from medrep.explain.targets import Target

    enc = load_model(args.model)
    data = load_dataset("demo").split("test")
    masked = [i for i in range(len(data)) if data[i].mask.any()]
    items = [data[masked[i % len(masked)]] for i in range(max(args.batch, args.maps))]
    x_all = torch.stack([it.image for it in items])
    y_all = torch.tensor([it.label for it in items])
    s_all = torch.stack([it.mask for it in items])
    x, y = x_all[: args.batch], y_all[: args.batch]
    target = Target("class", y)
    print(f"model {enc.name}, batch {args.batch}, {torch.get_num_threads()} threads")

    # 1. Grad-CAM
    grid = enc.token_grid

    def reshape(t):
        return grid.to_map(grid.patch_tokens(t)).permute(0, 3, 1, 2)

    layer = enc.module.blocks[-1].norm1
    ours = lambda: explain(enc, x, "gradcam", target)  # noqa: E731

    def theirs():
        with GradCAM(model=Logits(enc), target_layers=[layer], reshape_transform=reshape) as cam:
            cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(int(c)) for c in y])

    t_ours, t_ref = best_of(ours, args.repeats), best_of(theirs, args.repeats)
    print(f"1. Grad-CAM       medrep {t_ours:.3f}s  pytorch-grad-cam {t_ref:.3f}s  ratio {t_ref / t_ours:.2f}x (goal >= 1x)")

    # 2. Chefer batched vs batch-1 loop
    batched = lambda: explain(enc, x, "chefer", target)  # noqa: E731

    def loop():
        for i in range(len(x)):
            explain(enc, x[i:i + 1], "chefer", target.index(slice(i, i + 1)))

    t_b, t_l = best_of(batched, args.repeats), best_of(loop, args.repeats)
    print(f"2. Chefer         batch {t_b:.3f}s  batch-1 loop {t_l:.3f}s  ratio {t_l / t_b:.2f}x (goal >= 4x at batch 16)")

    # 3. pointing game + deletion AUC on N maps vs Quantus
    import quantus

    if not hasattr(np, "trapz"):  # Quantus 0.6 calls np.trapz, removed in NumPy 2
        np.trapz = np.trapezoid

    n = args.maps
    xs, ys, ss = x_all[:n], y_all[:n], s_all[:n]
    maps = explain(enc, xs[: min(n, 64)], "center", None).repeat((n + 63) // 64, 1, 1)[:n]
    maps = maps + 1e-3 * torch.rand(maps.shape, generator=torch.Generator().manual_seed(0))  # break ties
    h, w = maps.shape[-2:]
    tgt = Target("class", ys)

    def ours3():
        pointing_game(maps, ss)
        deletion_auc(enc, xs, maps, tgt, steps=args.steps, baseline="zero", batch_size=256)

    model = Logits(enc).eval()
    xn, yn, an, sn = xs.numpy(), ys.numpy(), maps[:, None].numpy(), ss[:, None].numpy().astype(float)

    def quantus3():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantus.PointingGame(disable_warnings=True)(model=model, x_batch=xn, y_batch=yn, a_batch=an, s_batch=sn,
                                                          device="cpu")
            quantus.PixelFlipping(features_in_step=h * w // args.steps, perturb_baseline="black", return_auc_per_sample=True,
                                  disable_warnings=True)(model=model, x_batch=xn, y_batch=yn, a_batch=an, device="cpu",
                                                         batch_size=64)

    t_o = best_of(ours3, args.repeats)
    t_q = best_of(quantus3, 1)  # one run: Quantus is the slow side
    print(f"3. pointing+deletion on {n} maps  medrep {t_o:.2f}s  Quantus {t_q:.2f}s  ratio {t_q / t_o:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
