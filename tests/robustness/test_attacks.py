"""The attack template against independent references: Captum's PGD, hand-computed L2 steps."""
from __future__ import annotations

import pytest
import torch

from medrep.errors import MedrepError
from medrep.robustness import Collide, L2PGD, LinfPGD, Push, Representation, make_attack, representation_loss


def _batch(small_phantoms, n=8, offset=0):
    test = small_phantoms.split("test")
    return torch.stack([test[i].image for i in range(offset, offset + n)])


def test_linf_matches_captum_pgd(vit2, small_phantoms):
    from captum.robust import PGD

    x = _batch(small_phantoms)
    with torch.no_grad():
        target = vit2.embed(_batch(small_phantoms, offset=8))
    eps, alpha, steps = 4 / 255, 1 / 255, 6

    def loss(out, tgt):
        return 0.5 * (out - tgt).pow(2).sum(1)

    pgd = PGD(lambda p: vit2.embed(p), loss_func=loss, lower_bound=0.0, upper_bound=1.0)
    pgd.fgsm.zero_thresh = 0.0  # Captum skips |g| ≤ 1e-6; a plain sign step does not
    ref = pgd.perturb(x.clone(), radius=eps, step_size=alpha, step_num=steps, target=target, targeted=True)

    out = LinfPGD(steps=steps, step_size=alpha).run(
        representation_loss(vit2, Representation(), Collide(), target), x, eps)
    assert torch.allclose(out.x_adv, ref, atol=1e-6)
    # the comparison is not vacuous: the attack moved pixels to the box edge and lowered the loss
    assert (out.x_adv - x).abs().max() == pytest.approx(eps, abs=1e-6)
    assert out.loss_history[-1].mean() < 0.8 * out.loss_history[0].mean()
    assert not any(p.grad is not None for p in vit2.module.parameters())


def test_l2_step_and_projection_by_hand(vit2, small_phantoms):
    x = _batch(small_phantoms, 4)
    with torch.no_grad():
        target = vit2.embed(_batch(small_phantoms, 4, offset=4))
    fn = representation_loss(vit2, Representation(), Collide(), target)
    eps, alpha = 0.5, 0.3
    # one step by hand: δ = −α·g/‖g‖, then scaled back into the ball, then clipped to [0, 1]
    d = torch.zeros_like(x, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x + d).sum(), d)
    step = -alpha * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    expect = (x + step).clamp(0, 1)
    out = L2PGD(steps=1, step_size=alpha).run(fn, x, eps)
    assert torch.allclose(out.x_adv, expect, atol=1e-6)
    # many steps: always inside the ball and the pixel range
    out = L2PGD(steps=8, step_size=alpha).run(fn, x, eps)
    norms = (out.x_adv - x).flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-5).all() and norms.max() > 0.9 * eps
    assert out.x_adv.min() >= 0 and out.x_adv.max() <= 1


def test_random_start_is_seeded_and_in_ball(vit2, small_phantoms):
    x = _batch(small_phantoms, 4)
    with torch.no_grad():
        z = vit2.embed(x)
    fn = representation_loss(vit2, Representation(), Push(), z)
    eps = 8 / 255
    a = LinfPGD(steps=2, random_start=True).run(fn, x, eps, torch.Generator().manual_seed(5))
    b = LinfPGD(steps=2, random_start=True).run(fn, x, eps, torch.Generator().manual_seed(5))
    c = LinfPGD(steps=2, random_start=True).run(fn, x, eps, torch.Generator().manual_seed(6))
    assert torch.equal(a.x_adv, b.x_adv) and not torch.equal(a.x_adv, c.x_adv)
    assert (a.x_adv - x).abs().max() <= eps + 1e-6
    # push: the loss −½‖f(x′) − f(x)‖² must go down (representation moves away)
    assert a.loss_history[-1].mean() < a.loss_history[0].mean() < 0


@pytest.mark.parametrize("attack, eps", [(LinfPGD, 4 / 255), (L2PGD, 0.5)])
def test_random_start_is_drawn_on_the_cpu_and_moved_to_the_input(attack, eps):
    # The seeded draws come from CPU generators and must be made on the CPU whatever the default device is (a
    # GPU session's torch.set_default_device("cuda") would reject a CPU generator); 'meta' stands in for it here.
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    fn = lambda xa: -(xa - 0.5).pow(2).flatten(1).sum(1)  # noqa: E731
    ref = attack(steps=2, random_start=True).run(fn, x, eps, torch.Generator().manual_seed(3))
    with torch.device("meta"):
        got = attack(steps=2, random_start=True).run(fn, x, eps, torch.Generator().manual_seed(3))
    assert got.x_adv.device == x.device and torch.equal(got.x_adv, ref.x_adv) and not torch.equal(ref.x_adv, x)


def test_early_stop_freezes_finished_items(vit2, small_phantoms):
    x = _batch(small_phantoms, 4)
    with torch.no_grad():
        target = vit2.embed(_batch(small_phantoms, 4, offset=4))
    fn = representation_loss(vit2, Representation(), Collide(), target)
    done_from_start = lambda xa: torch.tensor([True, False, True, False])  # noqa: E731
    out = LinfPGD(steps=5, step_size=1 / 255, early_stop=done_from_start).run(fn, x, 4 / 255)
    # items that meet the criterion at the start leave before any step, untouched
    assert out.steps_taken.tolist() == [0, 5, 0, 5] and out.succeeded.tolist() == [True, False, True, False]
    moved = (out.x_adv - x).abs().flatten(1).amax(1)
    assert moved[0] == 0 and moved[1] > 2 / 255


@pytest.mark.parametrize("kwargs, where", [
    ({"norm": "l3", "steps": 5}, "norm"),
    ({"norm": "linf", "steps": 0}, "attack_steps"),
    ({"norm": "l2", "steps": 5, "step_size": -1.0}, "step_size"),
])
def test_bad_attack_options(kwargs, where):
    with pytest.raises(MedrepError) as err:
        make_attack(**kwargs)
    assert err.value.where == where


@pytest.mark.parametrize("eps", [0.0, -0.1, float("nan")])
def test_bad_eps(vit2, eps):
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(MedrepError, match="ε must be positive") as err:
        LinfPGD(steps=1).run(lambda xa: xa.sum((1, 2, 3)), x, eps)
    assert err.value.where == "eps"
