"""Flow-matching targets and prior losses recomputed by hand."""

import torch

from lediflow.method import flow_matching as flow, prior_loss as prior
from lediflow.method.networks.auxiliary import AuxiliaryModel
from lediflow.method.networks.dit import build_dit


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_linear_path_and_target_by_hand():
    x0 = torch.tensor([[[[1.0, -2.0]]], [[[0.5, 4.0]]]])
    x1 = torch.tensor([[[[3.0, 0.0]]], [[[-1.5, 2.0]]]])
    t = torch.tensor([0.25, 0.5])
    xt, u = flow.linear_path(x0, x1, t)
    assert torch.allclose(xt, torch.tensor([[[[1.5, -1.5]]], [[[-0.5, 3.0]]]]))
    assert torch.allclose(u, torch.tensor([[[[2.0, 2.0]]], [[[-2.0, -2.0]]]]))


def test_gaussian_coupling_is_independent_standard_normal():
    x1 = torch.full((4, 1, 8, 8), 0.7)
    x0 = flow.gaussian_coupling(x1, _gen(3))
    assert torch.equal(x0, torch.randn((4, 1, 8, 8), generator=_gen(3)))


def test_flow_matching_loss_by_hand():
    class Const(torch.nn.Module):
        def forward(self, x, t):
            return torch.ones_like(x) * t.view(-1, 1, 1, 1)

    x0, x1 = torch.randn(3, 1, 4, 4, generator=_gen(1)), torch.randn(3, 1, 4, 4, generator=_gen(2))
    t = torch.tensor([0.1, 0.5, 0.9])
    expected = ((t.view(-1, 1, 1, 1) - (x1 - x0)) ** 2).mean()
    assert torch.allclose(flow.flow_matching_loss(Const(), x0, x1, t).total, expected)


def test_learned_coupling_recomputed_by_hand():
    torch.manual_seed(0)
    aux = AuxiliaryModel(16, 1, 8, [8, 16]).eval()
    x1 = torch.rand(5, 1, 16, 16) * 2 - 1
    s = 0.7
    x0 = flow.learned_coupling(x1, aux, s, _gen(11))
    gen = _gen(11)
    with torch.no_grad():
        mu, logvar = aux.encode(x1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)  # z ~ q(z | x1), same image
        mean, lv = aux.decode(z)
        by_hand = mean + s * torch.exp(0.5 * lv) * torch.randn(mean.shape, generator=gen)
    assert torch.allclose(x0, by_hand, atol=1e-6)
    # s = 0 collapses the prior to its mean mu_D(z).
    x0_mean = flow.learned_coupling(x1, aux, 0.0, _gen(11))
    assert torch.allclose(x0_mean, mean, atol=1e-6)


def test_logit_normal_times_in_open_interval_centred():
    t = flow.sample_time(20000, _gen(), torch.device("cpu"), "logit_normal", 0.0, 1.0)
    assert t.min() > 0 and t.max() < 1 and abs(t.median().item() - 0.5) < 0.02
    u = flow.sample_time(20000, _gen(), torch.device("cpu"), "uniform")
    assert abs(u.mean().item() - 0.5) < 0.01


def _mean_grad(loss_fn, logvar_value):
    y = torch.tensor([0.5, -0.25, 1.0])
    mean = torch.zeros(3, requires_grad=True)
    logvar = torch.full((3,), logvar_value, requires_grad=True)
    loss_fn(y, mean, logvar).sum().backward()
    return mean.grad, logvar.grad, y


def test_vgl_mean_gradient_is_not_damped_by_large_variance():
    for lv in (-4.0, 0.0, 4.0):
        grad, _, y = _mean_grad(prior.variance_guided_loss, lv)
        assert torch.allclose(grad, 2 * (0 - y))  # d/dmu (y - mu)^2, whatever sigma is
    # Plain NLL: the same gradient scaled by 1/sigma^2, vanishing for large sigma.
    nll, _, y = _mean_grad(prior.gaussian_nll, 4.0)
    vgl, _, _ = _mean_grad(prior.variance_guided_loss, 4.0)
    assert torch.allclose(nll, (0 - y) * torch.exp(torch.tensor(-4.0)))
    assert nll.abs().max() < 0.02 * vgl.abs().max()


def test_vgl_variance_optimum_is_log_squared_residual():
    y = torch.tensor([0.5, -0.25, 1.0])
    mean = torch.zeros(3)
    logvar = torch.log((y - mean) ** 2).requires_grad_(True)
    prior.variance_guided_loss(y, mean, logvar).sum().backward()
    assert torch.allclose(logvar.grad, torch.zeros(3), atol=1e-6)


def test_beta_nll_scales_nll_gradient_by_sigma_power():
    nll, _, _ = _mean_grad(prior.gaussian_nll, 2.0)
    bnll, _, _ = _mean_grad(lambda y, m, lv: prior.beta_nll(y, m, lv, 0.5), 2.0)
    assert torch.allclose(bnll, nll * torch.exp(torch.tensor(0.5 * 2.0)))


def test_kl_matches_torch_distributions():
    mu, logvar = torch.randn(4, 6, generator=_gen(5)), torch.randn(4, 6, generator=_gen(6))
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(dim=1)
    assert torch.allclose(prior.kl_to_standard_normal(mu, logvar), expected, atol=1e-5)


def test_prior_decoder_logvar_is_clamped():
    aux = AuxiliaryModel(8, 1, 4, [4], logvar_min=-3.0, logvar_max=1.0)
    with torch.no_grad():
        aux.to_pixels.bias.fill_(50.0)
        _, logvar = aux.decode(torch.zeros(2, 4))
    assert logvar.max().item() == 1.0


def test_dit_starts_at_zero_velocity_and_keeps_shape():
    model = build_dit("dit-xs", 16, 3, 4)
    out = model(torch.randn(2, 3, 16, 16), torch.rand(2))
    assert out.shape == (2, 3, 16, 16) and out.abs().max() == 0  # adaLN-Zero output layer


def test_ot_pairing_is_a_permutation_of_the_same_draws_with_lower_cost_than_random_pairing():
    x1 = torch.randn((64, 1, 8, 8), generator=_gen(3)) * 0.5 + 1.0
    random = flow.gaussian_coupling(x1, _gen(7))
    paired = flow.ot_coupling(x1, _gen(7))  # the same Gaussian draws, re-paired with the batch
    assert sorted(map(tuple, paired.flatten(1).tolist())) == sorted(map(tuple, random.flatten(1).tolist()))

    def cost(x0):
        return float(((x0 - x1) ** 2).flatten(1).sum(1).mean())

    assert cost(paired) < 0.9 * cost(random)
    # optimal: no swap of two partners lowers the total (the exact plan's cyclical monotonicity)
    d = ((paired.flatten(1)[:, None] - x1.flatten(1)[None]) ** 2).sum(-1)
    own = torch.diagonal(d)
    assert bool((own[:, None] + own[None, :] <= d + d.T + 1e-6).all())


def test_ot_on_the_priors_draws_re_pairs_the_draws_the_prior_makes_at_inference_at_lower_cost():
    from lediflow.method.learned_prior import LearnedPrior

    torch.manual_seed(0)
    aux = AuxiliaryModel(8, 1, 4, [8, 16]).eval()
    prior = LearnedPrior(aux, None, "euler", 1, std_scale=1.0)  # z ~ N(0, I): no latent sampler
    x1 = torch.randn((32, 1, 8, 8), generator=_gen(3)) * 0.5 + 1.0
    drawn = prior.draw([_gen(5)] * 32, torch.device("cpu")).x0  # what the coupling draws from the same generator
    paired = flow.prior_ot_coupling(x1, prior, _gen(5))
    assert sorted(map(tuple, paired.flatten(1).tolist())) == sorted(map(tuple, drawn.flatten(1).tolist()))
    assert not torch.equal(paired, drawn)  # re-paired, not left as drawn

    def cost(x0):
        return float(((x0 - x1) ** 2).flatten(1).sum(1).mean())

    assert cost(paired) < cost(drawn)
