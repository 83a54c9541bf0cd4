"""Which params define one flow model: the equal-compute baseline must be extendable on its own."""

import pytest
import torch

from lediflow.pipeline.config import load_params
from lediflow.pipeline.budget import flow_model_config, flow_steps, train_section
from lediflow.method.networks.dit import build_dit
from lediflow.method.trainer import TrainConfig, Trainer


@pytest.fixture
def params():
    return load_params(["params.yaml"])


def _with(*sets):
    return load_params(["params.yaml"], sets)


def test_baseline_gets_the_extra_steps_and_learned_does_not(params):
    steps, extra = params["flow"]["train"]["steps"], params["flow"]["baseline_extra_steps"]
    assert extra > 0
    assert flow_steps(params, "gaussian") == steps + extra
    assert flow_steps(params, "learned") == steps
    assert flow_model_config(params, "pixel", "gaussian")["train"]["steps"] == steps + extra


@pytest.mark.parametrize("change", ["flow.baseline_extra_steps=9999", "flow.priors=[learned]",
                                    "flow.spaces=[pixel]", "flow.latent_patch_size=1"])
def test_sweep_knobs_leave_the_learned_pixel_flow_alone(params, change):
    before = flow_model_config(params, "pixel", "learned")
    assert flow_model_config(_with(change), "pixel", "learned") == before


def test_a_model_knob_reaches_every_model(params):
    changed = _with("flow.train.lr=0.123")
    for space in ("pixel", "latent"):
        for prior in ("gaussian", "learned"):
            assert flow_model_config(changed, space, prior)["train"]["lr"] == 0.123


def test_raising_baseline_steps_keeps_its_checkpoints_resumable(params, tmp_path):
    # The trainer resumes only from checkpoints with the same fingerprint; a longer baseline must
    # continue from its last checkpoint instead of starting over.
    longer = _with("flow.baseline_extra_steps=9999")
    a, b = (flow_model_config(p, "latent", "gaussian") for p in (params, longer))
    assert a["train"]["steps"] != b["train"]["steps"]

    def fingerprint(cfg):
        model = build_dit("dit-xs", 16, 1, 4)
        trainer = Trainer(model, lambda net, gen: (torch.zeros(()), {}), tmp_path, TrainConfig.from_params(cfg["train"]),
                          seed=0, device=torch.device("cpu"), fingerprint={"flow": cfg}, progress=False)
        return trainer.fingerprint

    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(flow_model_config(_with("flow.train.lr=0.5"), "latent", "gaussian"))


def test_train_scale_multiplies_every_networks_steps_and_keeps_the_baselines_share(params):
    scaled = _with("run.train_scale=2")
    for section in ("autoencoder", "prior", "latent_sampler"):
        assert train_section(scaled, section)["steps"] == 2 * params[section]["train"]["steps"]
        assert train_section(params, section) == params[section]["train"]  # scale 1 changes nothing
        assert train_section(scaled, section)["warmup_steps"] == params[section]["train"]["warmup_steps"]
    for prior in ("gaussian", "learned"):
        assert flow_steps(scaled, prior) == 2 * flow_steps(params, prior)
    quarter = _with("run.train_scale=0.25")
    assert flow_steps(quarter, "gaussian") - flow_steps(quarter, "learned") == params["flow"]["baseline_extra_steps"] // 4
