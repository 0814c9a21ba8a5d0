"""GradNet model maths: dL/df2 against finite differences, descent behaviour of the update, and
second-order gradients for training.  Tiny channel widths (AlexNetConfig) keep everything fast;
finite-difference checks run in float64."""
from __future__ import annotations

import pytest
import torch

from gradtrack.models import AlexNetConfig, GradNet, GradNetConfig, SiamFCConfig
from gradtrack.models.labels import balanced_logistic_loss, centered_label

TINY = AlexNetConfig(channels=(4, 4, 4, 4, 4))


def tiny_gradnet(seed: int = 0, dtype=torch.float64, **kw) -> GradNet:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GradNet(GradNetConfig(siamfc=SiamFCConfig(backbone=TINY), template=TINY, **kw))
        # non-trivial BN statistics so eval-mode BN is not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        with torch.no_grad():
            model.adjust.scale.fill_(0.05)
    return model.to(dtype).eval()


def inputs(seed: int = 1, dtype=torch.float64, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(1, 3, 127, 127, generator=g, dtype=dtype) * 255
    x = torch.rand(batch, 3, 255, 255, generator=g, dtype=dtype) * 255
    label, weight = centered_label(17, 2.0, dtype=dtype)
    return z, x, label, weight


def loss_of(model, f2, xf, label, weight):
    return balanced_logistic_loss(model.score(model.u1(f2), xf), label, weight)


def test_gradient_matches_central_differences():
    model = tiny_gradnet()
    z, x, label, weight = inputs()
    with torch.no_grad():
        f2 = model.f2(z)
        xf = model.search_features(x)
    g, loss = model.gradient(f2, xf, label, weight, create_graph=False)
    assert g.shape == f2.shape == (1, 4, 12, 12)
    assert torch.allclose(loss, loss_of(model, f2, xf, label, weight))
    eps = 1e-6
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(f2.numel(), generator=gen)[:40]
    flat_g = g.reshape(-1)
    for k in idx.tolist():
        d = torch.zeros_like(f2).reshape(-1)
        d[k] = eps
        d = d.reshape(f2.shape)
        with torch.no_grad():
            fd = (loss_of(model, f2 + d, xf, label, weight) - loss_of(model, f2 - d, xf, label, weight)) / (2 * eps)
        # the difference quotient's own rounding error: ~ulp(loss) / eps (the loss is ~27 here: up to ~5e-8;
        # how large it comes out depends on the CPU's float64 summation order)
        fd_noise = 8 * torch.finfo(torch.float64).eps * float(loss.detach().abs()) / eps
        assert torch.isclose(flat_g[k], fd, rtol=1e-5, atol=max(1e-10, fd_noise)), (k, float(flat_g[k]), float(fd))
    assert g.abs().max() > 0


def test_gradcheck_full_jacobian():
    """torch.autograd.gradcheck w.r.t. f2 and the search features (fast mode: random projections of
    the full Jacobian, compared against finite differences)."""
    model = tiny_gradnet(seed=2)
    z, x, label, weight = inputs(seed=3)
    with torch.no_grad():
        f2 = model.f2(z).requires_grad_(True)
        xf = model.search_features(x).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: loss_of(model, a, b, label, weight), (f2, xf), eps=1e-6, atol=1e-8,
                                     fast_mode=True)


def _identity_bn_u2(model: GradNet, step: float) -> None:
    """U2 = tanh(-step * I * (s g)): BN to the identity in eval mode, conv to -step x identity."""
    u2 = model.u2
    c = u2.conv.weight.shape[0]
    with torch.no_grad():
        u2.conv.weight.zero_()
        u2.conv.weight[:, :, 1, 1] = -step * torch.eye(c, dtype=u2.conv.weight.dtype)
        u2.conv.bias.zero_()
        u2.bn.running_mean.zero_()
        u2.bn.running_var.fill_(1.0 - u2.bn.eps)
        u2.bn.weight.fill_(1.0)
        u2.bn.bias.zero_()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_descent_u2_lowers_the_loss_and_ascent_raises_it(seed):
    """With U2 = -c * identity (and BN the identity), ``f2' = f2 - tanh(c s g)`` and
    ``<g, f2' - f2> < 0``: for a small step the update lowers the loss it was computed from.  The same
    step with the opposite sign raises it, so this test can fail."""
    model = tiny_gradnet(seed=seed)
    z, x, label, weight = inputs(seed=seed + 10)
    with torch.no_grad():
        f2 = model.f2(z)
        xf = model.search_features(x)
    g, loss0 = model.gradient(f2, xf, label, weight)
    # step such that the largest change of f2 is 1e-3 of f2's scale
    c = float(1e-3 * f2.abs().max() / (model.cfg.grad_scale * g.abs().max()))
    results = {}
    for sign in (+1, -1):
        _identity_bn_u2(model, sign * c)
        with torch.no_grad():
            template, f2_new = model.update(f2, g)
            results[sign] = float(balanced_logistic_loss(model.score(template, xf), label, weight))
        assert not torch.allclose(template, model.u1(f2))
        assert float(((f2_new - f2) * g).sum()) * sign < 0
    assert results[+1] < float(loss0.detach()) < results[-1]


def test_second_order_gradients_reach_u1_and_stem():
    model = tiny_gradnet(seed=4)
    model.train()  # as in training (BN batch statistics)
    z, x, label, weight = inputs(seed=5, batch=2)
    params = {
        "u1": model.template.head[0].weight,
        "u2": model.u2.conv.weight,
        "stem": model.template.stem[0].weight,
    }

    def grads(create_graph: bool):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        _, loss0, loss1 = model(z, x, label, weight, create_graph=create_graph)
        loss1.backward()
        return {k: (None if p.grad is None else p.grad.clone()) for k, p in params.items()}

    # the gradient itself is differentiable only with create_graph=True
    f2 = model.f2(z)
    xf = model.search_features(x)
    g2, _ = model.gradient(f2, xf, label, weight, create_graph=True)
    assert g2.requires_grad and g2.grad_fn is not None
    (d_u1,) = torch.autograd.grad(g2.pow(2).sum(), params["u1"], retain_graph=True)
    assert d_u1.abs().sum() > 0  # dL/df2 depends on U1's weights
    (d_stem,) = torch.autograd.grad(g2.pow(2).sum(), params["stem"])
    assert d_stem.abs().sum() > 0  # ... and on f2 itself
    g1, _ = model.gradient(f2, xf, label, weight, create_graph=False)
    assert not g1.requires_grad and g1.grad_fn is None
    torch.testing.assert_close(g1, g2.detach())

    second = grads(True)
    first = grads(False)
    for k in params:
        assert second[k] is not None and second[k].abs().sum() > 0, k
    # U2 sees the gradient only as an input: same weight gradient either way; U1 and the stem also
    # receive the second-order term through g, so their gradients differ
    torch.testing.assert_close(second["u2"], first["u2"])
    assert not torch.allclose(second["u1"], first["u1"], rtol=1e-6, atol=1e-12)
    assert first["stem"] is not None
    assert not torch.allclose(second["stem"], first["stem"], rtol=1e-6, atol=1e-12)


def test_template_generalisation_gradient_is_mean_over_searches():
    """One template against k searches: dL/df2 is the mean of the per-search gradients."""
    model = tiny_gradnet(seed=6)
    z, x, label, weight = inputs(seed=7, batch=3)
    with torch.no_grad():
        f2 = model.f2(z)
        xf = model.search_features(x)
    g_all, _ = model.gradient(f2, xf, label, weight)
    g_each = [model.gradient(f2, xf[i:i + 1], label, weight)[0] for i in range(3)]
    torch.testing.assert_close(g_all, sum(g_each) / 3)


def test_u2_scale_multiplies_the_bounded_correction():
    """``u2_scale`` multiplies U2's tanh output: the correction of a scaled U2 is exactly ``s`` times the
    unscaled one (same weights), its bound is ``s`` instead of 1, and a non-positive scale is refused."""
    base, scaled = tiny_gradnet(seed=7), tiny_gradnet(seed=7, u2_scale=20.0)
    assert scaled.u2.out_scale == 20.0 and base.u2.out_scale == 1.0
    g = torch.randn(1, base.template.f2_channels, 12, 12, dtype=torch.float64) * 10
    with torch.no_grad():
        d1, d20 = base.u2(g), scaled.u2(g)
    torch.testing.assert_close(d20, 20.0 * d1)
    assert float(d1.abs().max()) <= 1.0 < float(d20.abs().max()) <= 20.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="output scale"):
            GradNet(GradNetConfig(siamfc=SiamFCConfig(backbone=TINY), template=TINY, u2_scale=bad))
