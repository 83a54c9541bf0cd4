"""Solvers on closed-form ODEs, exact NFE, per-image seeds, straight paths, extras."""

import math

import pytest
import torch

from lediflow.method import flow_matching as flow, seeding

from lediflow.pipeline import paths
from lediflow.pipeline.config import load_params
from lediflow.method.editing import euler_inpaint, mask_for, slerp
from lediflow.core.errors import ConfigError
from lediflow.method.learned_prior import LearnedPrior, sample_generators
from lediflow.method.networks.auxiliary import AuxiliaryModel
from lediflow.method.networks.dit import build_dit
from lediflow.method.networks.latent_mlp import LatentVelocityMLP
from lediflow.method.device import to_uint8
from lediflow.method.sampling import sample_batch
from lediflow.method.solvers import EVALS_PER_STEP, solve


def _cos_velocity(x, t):
    """dx/dt = 3 cos(3t): x(1) = x(0) + sin(3)."""
    return (3 * torch.cos(3 * t)).view(-1, *([1] * (x.dim() - 1))).expand_as(x)


@pytest.mark.parametrize("solver, order", [("euler", 1), ("midpoint", 2), ("heun3", 3), ("rk4", 4)])
def test_fixed_grid_solvers_converge_at_their_order(solver, order):
    x0 = torch.zeros(2, 3, dtype=torch.float64)
    errors = [abs(solve(_cos_velocity, x0, solver, n).x1[0, 0].item() - math.sin(3.0)) for n in (8, 16, 32)]
    ratios = [errors[i] / errors[i + 1] for i in range(2)]
    for ratio in ratios:  # halving the step divides the error by 2^order
        assert ratio == pytest.approx(2**order, rel=0.15)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "heun3", "rk4"])
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_fixed_grid_nfe_is_counted_exactly(solver, steps):
    calls = []

    def velocity(x, t):
        calls.append(float(t[0]))
        return -x

    result = solve(velocity, torch.ones(4, 2), solver, steps)
    assert result.nfe == len(calls) == EVALS_PER_STEP[solver] * steps
    assert min(calls) == 0.0 and max(calls) <= 1.0


def test_dopri5_reports_the_calls_it_made_and_is_accurate():
    calls = []

    def velocity(x, t):
        calls.append(1)
        return -x

    x0 = torch.ones(3, 2, dtype=torch.float64)
    loose = solve(velocity, x0, "dopri5", rtol=1e-3, atol=1e-3)
    assert loose.nfe == len(calls)
    assert (loose.nfe - 2) % 6 == 0  # 2 for the initial step size, then 6 per (FSAL) step
    tight = solve(lambda x, t: -x, x0, "dopri5", rtol=1e-9, atol=1e-9)
    assert tight.nfe > loose.nfe
    assert torch.allclose(tight.x1, x0 * math.exp(-1), atol=1e-8)


@pytest.mark.parametrize("tol", [1e-3, 1e-5])
def test_dopri5_never_calls_the_network_outside_0_1(tol):
    # Plain torchdiffeq dopri5 on dx/dt = -x steps to t ~ 1.26 (tol 1e-3) and interpolates back.
    calls = []

    def velocity(x, t):
        calls.append(float(t[0]))
        return -x

    result = solve(velocity, torch.ones(3, 2, dtype=torch.float64), "dopri5", rtol=tol, atol=tol)
    assert 0.0 <= min(calls) and max(calls) <= 1.0
    assert result.t_range == (min(calls), max(calls)) and result.nfe == len(calls)
    assert max(calls) == pytest.approx(1.0)  # the last step lands on t = 1
    assert torch.allclose(result.x1, torch.full((3, 2), math.exp(-1), dtype=torch.float64), atol=20 * tol)


def _tiny_models():
    torch.manual_seed(0)
    aux = AuxiliaryModel(16, 1, 8, [8, 16]).eval()
    sampler = LatentVelocityMLP(8, 32, 2).eval()
    dit = build_dit("dit-xs", 16, 1, 4)
    with torch.no_grad():  # leave adaLN-Zero's all-zero output: give the net a non-trivial field
        for p in dit.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return aux, sampler, dit.eval()


@pytest.mark.parametrize("prior_kind", ["gaussian", "learned"])
def test_same_seeds_same_images_at_batch_sizes_1_7_64(prior_kind):
    aux, sampler, dit = _tiny_models()
    prior = LearnedPrior(aux, sampler, "midpoint", 4, 1.0) if prior_kind == "learned" else None
    device = torch.device("cpu")

    def draw(batch):
        out = []
        for start in range(0, 64, batch):
            idx = list(range(start, min(64, start + batch)))
            out.append(to_uint8(sample_batch(dit, prior, idx, 5, (1, 16, 16), "midpoint", 3, None, device).images))
        return torch.cat(out)

    reference = draw(64)
    assert torch.equal(draw(1), reference)
    assert torch.equal(draw(7), reference)
    assert len(torch.unique(reference.float().mean(dim=(1, 2, 3)))) > 50  # images differ from each other


class _ScaledIdentityPrior(torch.nn.Module):
    """A synthetic auxiliary model: q(z|y) = delta(y), P_L(x|z) = delta(0.5 z) (sigma -> 0)."""

    def encode(self, y):
        return y.flatten(1), torch.full_like(y.flatten(1), -60.0)

    def decode(self, z):
        return 0.5 * z, torch.full_like(z, -60.0)


class _MLPVelocity(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(dim + 1, 128), torch.nn.SiLU(), torch.nn.Linear(128, dim))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], dim=1))


def _train_one_step_error(coupling: str) -> float:
    torch.manual_seed(0)
    data = torch.randn(256, 4)
    model = _MLPVelocity(4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    prior = _ScaledIdentityPrior()
    for _ in range(1500):
        x1 = data[torch.randint(256, (128,), generator=gen)]
        x0 = flow.learned_coupling(x1, prior, 0.0, gen) if coupling == "learned" else flow.gaussian_coupling(x1, gen)
        loss = flow.flow_matching_loss(model, x0, x1, flow.sample_time(128, gen, x1.device)).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x0 = flow.learned_coupling(data, prior, 0.0, gen) if coupling == "learned" else flow.gaussian_coupling(data, gen)
        one_step = solve(model, x0, "euler", 1).x1
    return float(((one_step - data) ** 2).mean() / (data**2).mean())


@pytest.mark.slow
def test_sigma_zero_learned_prior_makes_one_euler_step_exact():
    learned = _train_one_step_error("learned")
    gaussian = _train_one_step_error("gaussian")
    assert learned < 0.01, learned  # straight, non-crossing paths: x0 + v(x0, 0) = x1
    assert gaussian > 20 * learned  # the Gaussian coupling's paths cross: one step lands near the mean


def test_slerp_endpoints_and_norm():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    assert torch.allclose(path.norm(dim=1), torch.ones(5))  # stays on the circle, unlike lerp
    assert torch.allclose(slerp(a, a, torch.tensor([0.3]))[0], a)


def test_inpainting_keeps_known_pixels_and_fills_unknown():
    y = torch.rand(2, 1, 8, 8)
    x0 = torch.zeros_like(y)
    mask = mask_for("center", (1, 8, 8)).expand_as(y)
    velocity = lambda x, t: torch.ones_like(x)  # noqa: E731
    out = euler_inpaint(velocity, x0, y, mask, steps=4)
    assert torch.allclose(out * mask, y * mask)  # known pixels end exactly at y
    assert torch.allclose(out * (1 - mask), (1 - mask))  # unknown pixels followed the field


def test_settings_round_trip_through_names():
    for name in ("euler-8", "rk4-1", "dopri5-1e-05"):
        solver, steps, tol = paths.parse_setting(name)
        rebuilt = f"{solver}-{steps}" if steps is not None else f"dopri5-{tol:g}"
        assert rebuilt == name


def test_zero_step_cells_are_the_prior_alone_at_nfe_0():
    aux, sampler, _ = _tiny_models()
    prior = LearnedPrior(aux, sampler, "midpoint", 4, 1.0)
    device = torch.device("cpu")
    idx = list(range(6))
    x0 = sample_batch(None, prior, idx, 5, (1, 16, 16), "prior-x0", 0, None, device)
    mean = sample_batch(None, prior, idx, 5, (1, 16, 16), "prior-mean", 0, None, device)
    draw = prior.draw(sample_generators(5, seeding.STREAM_SAMPLE, idx, device), device)
    assert x0.nfe == mean.nfe == 0 and x0.sampler_nfe == 8  # 4 midpoint steps of the latent sampler
    assert torch.equal(x0.images, draw.x0) and torch.equal(mean.images, draw.mean)
    # The same x0 a flow cell starts from: the NFE-0 column is the left end of every learned curve.
    dit = _tiny_models()[2]
    assert not torch.equal(sample_batch(dit, prior, idx, 5, (1, 16, 16), "euler", 1, None, device).images, x0.images)
    assert paths.parse_setting("prior-mean") == ("prior-mean", 0, None)
    settings = paths.settings(load_params(["configs/smoke.yaml"]), "flow-pixel-learned")
    assert settings[:2] == ["prior-x0", "prior-mean"]
    assert "prior-x0" not in paths.settings(load_params(["configs/smoke.yaml"]), "flow-pixel-gaussian")
    with pytest.raises(ConfigError, match="samples the learned prior"):
        paths.check_cell(load_params(["configs/smoke.yaml"]), "flow-pixel-gaussian", "prior-x0")


def test_latent_sampler_standardisation_round_trips_and_matches_the_aggregate_posterior():
    from lediflow.pipeline.stages.prior import aggregate_statistics

    gen = torch.Generator().manual_seed(0)
    mu = 3.0 + 2.0 * torch.randn(4000, 8, generator=gen, dtype=torch.float64)
    logvar = torch.full_like(mu, math.log(0.25))
    shift, scale = aggregate_statistics(mu, logvar)
    z = mu + 0.5 * torch.randn(mu.shape, generator=gen, dtype=torch.float64)  # one draw of the mixture
    assert torch.allclose(shift, z.mean(0), atol=0.15) and torch.allclose(scale, z.std(0), atol=0.1)
    assert torch.allclose(scale, torch.full((8,), math.sqrt(4.0 + 0.25), dtype=torch.float64), atol=0.15)
    sampler = LatentVelocityMLP(8, 32, 2, standardize=True).double()
    sampler.set_statistics(shift, scale)
    assert torch.allclose(sampler.from_standard(sampler.to_standard(z)), z, rtol=0, atol=1e-12)
    standard = sampler.to_standard(z)
    assert standard.mean().abs() < 0.05 and (standard.std() - 1).abs() < 0.05
    # The statistics travel with the weights (buffers), and an old sampler without them still loads.
    from lediflow.method.checkpoint import build_model

    rebuilt = build_model("latent_mlp", sampler.arch).double()
    rebuilt.load_state_dict(sampler.state_dict())
    assert torch.equal(rebuilt.z_shift, shift) and torch.equal(rebuilt.z_scale, scale)
    assert not build_model("latent_mlp", {"z_dim": 8, "hidden": 32, "depth": 2}).standardize
    # LearnedPrior.sample_z returns z in the data's coordinates: undone after the solve.
    aux = AuxiliaryModel(16, 1, 8, [8, 16]).eval()
    prior = LearnedPrior(aux, sampler.float().eval(), "euler", 1, 1.0)
    with torch.no_grad():
        for p in sampler.parameters():
            p.zero_()  # v = 0: the sampler's z(1) = z(0) ~ N(0, I) in standard coordinates
    z1, _ = prior.sample_z(sample_generators(0, seeding.STREAM_SAMPLE, range(4000), torch.device("cpu")),
                           torch.device("cpu"))
    assert torch.allclose(z1.mean(0).double(), shift, atol=0.15)
