"""A user's own nn.Module is borrowed, not taken: medrep's calls see it in eval mode with frozen parameters,
and afterwards it is exactly as the user left it (training mode per submodule, requires_grad per tensor)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from medrep.explain.methods import explain
from medrep.explain.targets import Target
from medrep.models import Preprocessing, load_encoder
from medrep.robustness import Collide, LinfPGD, Representation, representation_loss


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.features(x).mean(dim=(2, 3)))


def _state(module: nn.Module):
    return ([m.training for m in module.modules()], [p.requires_grad for p in module.parameters()])


def _user_setup():
    torch.manual_seed(0)
    net, head = UserNet(), nn.Linear(8, 2)
    net.train()
    net.features[1].eval()  # a user's mixed modes (e.g. a frozen BatchNorm) must survive too
    net.features[0].weight.requires_grad_(False)  # and so must a partly frozen parameter set
    enc = load_encoder(net, preprocessing=Preprocessing((16, 16), (0.5,), (0.25,), channels=1), name="user-net",
                       head=head, default_layer="features.3")
    return net, head, enc


def test_calls_see_eval_mode_and_the_user_state_is_restored():
    net, head, enc = _user_setup()
    before_net, before_head = _state(net), _state(head)
    stats = net.features[1].running_mean.clone()
    x = torch.rand(6, 1, 16, 16)
    reference = copy.deepcopy(net).eval()
    with torch.no_grad():
        expected = reference((x - 0.5) / 0.25)
        a, b = enc.embed(x), enc.embed(x)
        pooled = enc.embed(x, pool="mean")
    assert torch.equal(a, b), "dropout ran: the call did not put the module in eval mode"
    torch.testing.assert_close(a, expected)
    assert pooled.shape == (6, 8)
    assert _state(net) == before_net and _state(head) == before_head
    assert torch.equal(net.features[1].running_mean, stats)


def test_attacks_and_explanations_leave_no_parameter_gradients_and_the_user_can_train_after():
    net, head, enc = _user_setup()
    before = _state(net)
    x, guide = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        target = enc.embed(guide)
    loss_fn = representation_loss(enc, Representation(), Collide(), target)
    out = LinfPGD(steps=3, step_size=0.01).run(loss_fn, x, 4 / 255)
    assert float(out.loss_history[-1].mean()) < float(out.loss_history[0].mean())
    custom = Representation(fn=lambda e, p: e.module(e.preprocess(p)))  # calls the module directly
    custom(enc, x)
    for method in ("gradcam", "ig"):
        maps = explain(enc, x, method, Target("class", torch.tensor([0, 1, 0, 1])), layer="features.3") \
            if method == "gradcam" else explain(enc, x, method, Target("class", torch.tensor([0, 1, 0, 1])))
        assert maps.shape == (4, 16, 16)
    assert all(p.grad is None for p in list(net.parameters()) + list(head.parameters()))
    assert _state(net) == before
    # the user's own training step still works: gradients reach every trainable parameter
    net.zero_grad()
    nn.functional.cross_entropy(head(net((x - 0.5) / 0.25)), torch.tensor([0, 1, 0, 1])).backward()
    assert all((p.grad is not None) == p.requires_grad for p in net.parameters())
    assert net.features[3].weight.grad.abs().sum() > 0


def test_modules_medrep_builds_itself_stay_frozen_for_good():
    enc = load_encoder("demo-cnn")
    assert enc.owns_module and not enc.module.training
    assert not any(p.requires_grad for p in enc.parameters())


def test_evaluation_context_restores_each_submodules_own_mode():
    from medrep.models.base import evaluation

    net, _, enc = _user_setup()
    before = _state(net)[0]
    with evaluation(enc):
        assert not any(m.training for m in net.modules())
    assert _state(net)[0] == before and net.training and not net.features[1].training


def test_cache_key_follows_weights_changed_in_place_and_the_embed_function():
    net, _, enc = _user_setup()
    fp = enc.fingerprint
    assert enc.fingerprint == fp  # memoised, and stable while nothing changes
    with torch.no_grad():
        net.features[3].weight.add_(1.0)  # e.g. a fine-tuning step between two audits
    assert enc.fingerprint != fp
    prep = Preprocessing((16, 16), (0.5,), (0.25,), channels=1)
    plain = load_encoder(net, preprocessing=prep)
    same = load_encoder(net, preprocessing=prep, embed_fn=lambda m, x: m(x))
    other = load_encoder(net, preprocessing=prep, embed_fn=lambda m, x: m(x) * 0 + 1)
    again = load_encoder(net, preprocessing=prep, embed_fn=lambda m, x: m(x) * 0 + 1)
    assert len({plain.fingerprint, same.fingerprint, other.fingerprint}) == 3
    assert other.fingerprint == again.fingerprint  # the same code gives the same key (across processes too)
