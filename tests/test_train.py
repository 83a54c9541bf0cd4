"""The trainer: bitwise resume, kill safety, NaN guard, DDP."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lediflow.method.trainer import NonFiniteLossError, TrainConfig, ema_decay_at, learning_rate, list_checkpoints
from toy_training import make_trainer

HERE = Path(__file__).resolve().parent


def _state(trainer):
    opt = trainer.optimizer.state_dict()["state"]
    return ({k: v.clone() for k, v in trainer.model.state_dict().items()},
            {k: v.clone() for k, v in trainer.ema.items()},
            {f"{p}.{k}": v.clone() for p, s in opt.items() for k, v in s.items() if torch.is_tensor(v)})


def _assert_bitwise(a, b):
    for left, right in zip(a, b):
        assert left.keys() == right.keys()
        for key in left:
            assert torch.equal(left[key], right[key]), key


def test_lr_warmup_and_ema_ramp():
    cfg = TrainConfig(steps=10, batch_size=1, lr=1.0, warmup_steps=4)
    assert [learning_rate(k, cfg) for k in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1) and ema_decay_at(10**6, 0.999) == 0.999


def test_the_fused_ema_update_is_the_per_tensor_formula_bit_for_bit(tmp_path: Path):
    trainer = make_trainer(tmp_path / "run", steps=4)
    with torch.no_grad():
        for value in trainer.model.parameters():
            value.add_(torch.randn_like(value))  # weights apart from the EMA's copy
    trainer.step = 7
    decay = ema_decay_at(trainer.step, trainer.cfg.ema_decay)
    expected = {name: (trainer.ema[name] * decay + value * (1 - decay)) if value.dtype.is_floating_point else value
                for name, value in trainer.model.state_dict().items()}
    by_hand = {name: trainer.ema[name].clone().mul_(decay).add_(value, alpha=1 - decay)
               if value.dtype.is_floating_point else value for name, value in trainer.model.state_dict().items()}
    trainer._update_ema()
    for name in expected:
        assert torch.equal(trainer.ema[name], by_hand[name]), name  # the old per-tensor loop, bit for bit
        assert torch.allclose(trainer.ema[name], expected[name]), name


def test_n_steps_equal_half_plus_resume_bitwise(tmp_path: Path):
    one_go = make_trainer(tmp_path / "a", steps=6)
    one_go.fit()
    interrupted = make_trainer(tmp_path / "b", steps=6, fail_at=4)  # dies in step 4, after the step-2 checkpoint
    with pytest.raises(NonFiniteLossError):
        interrupted.fit()
    resumed = make_trainer(tmp_path / "b", steps=6)
    assert resumed.fit().resumed_from == 2
    _assert_bitwise(_state(one_go), _state(resumed))
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3, 4, 5, 6]  # each step logged once across the resume


def test_resumed_bookkeeping_matches_the_uninterrupted_run(tmp_path: Path):
    straight = make_trainer(tmp_path / "a", steps=6).fit()
    with pytest.raises(NonFiniteLossError):
        make_trainer(tmp_path / "b", steps=6, fail_at=4).fit()
    resumed = make_trainer(tmp_path / "b", steps=6).fit()
    assert resumed.resumed_from == 2
    # Cumulative across the resume, like the seconds: 6 steps x batch 4 (before: only the 4 steps after it).
    assert resumed.samples_seen == straight.samples_seen == 6 * 4
    assert resumed.step == straight.step and resumed.final_loss == straight.final_loss
    assert resumed.train_seconds > 0
    # The record names the hardware (a study's seconds are only comparable on one machine).
    assert resumed.device.startswith("cpu ") and resumed.device.endswith(f"({torch.get_num_threads()} threads)")
    # Re-running a finished job trains nothing and still reports the finished run, not NaN / 0.
    again = make_trainer(tmp_path / "b", steps=6).fit()
    assert again.resumed_from == 6 and again.samples_seen == 24 and again.final_loss == straight.final_loss
    assert again.train_seconds == pytest.approx(resumed.train_seconds)


def test_extending_steps_resumes_instead_of_restarting(tmp_path: Path):
    make_trainer(tmp_path / "a", steps=4).fit()
    extended = make_trainer(tmp_path / "a", steps=6)
    assert extended.fit().resumed_from == 4
    straight = make_trainer(tmp_path / "b", steps=6)
    straight.fit()
    _assert_bitwise(_state(straight), _state(extended))


@pytest.mark.parametrize("damage", ["truncate-weights", "state-json", "edited-step"])
def test_a_damaged_newest_checkpoint_resumes_from_the_one_before(tmp_path: Path, damage: str, capsys):
    make_trainer(tmp_path / "a", steps=4).fit()  # checkpoints at steps 2 and 4
    newest = list_checkpoints(tmp_path / "a" / "checkpoints")[-1]
    if damage == "truncate-weights":
        weights = newest / "optimizer.safetensors"
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "state-json":
        (newest / "state.json").write_text("{ not json")
    else:  # still valid JSON: an edited step would resume step-4 weights as if they were step 2's
        state = json.loads((newest / "state.json").read_text())
        (newest / "state.json").write_text(json.dumps({**state, "step": 2}))
    resumed = make_trainer(tmp_path / "a", steps=6)
    assert resumed.fit().resumed_from == 2
    assert "step_00000004 is damaged" in capsys.readouterr().err
    assert (newest.parent / "step_00000004.damaged").is_dir()  # kept for inspection, never resumed
    straight = make_trainer(tmp_path / "b", steps=6)
    straight.fit()
    _assert_bitwise(_state(straight), _state(resumed))


def test_nan_guard_stops_with_clear_message_and_keeps_last_checkpoint(tmp_path: Path):
    trainer = make_trainer(tmp_path, steps=8, fail_at=5)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    message = str(info.value)
    assert "loss became nan at step 5" in message and "step_00000004" in message and "lower train.lr" in message
    kept = list_checkpoints(tmp_path / "checkpoints")
    assert kept[-1].name == "step_00000004"
    load_file(str(kept[-1] / "model.safetensors"))  # intact


def test_sigkill_mid_training_resumes_from_last_complete_checkpoint(tmp_path: Path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(HERE / "toy_training.py"), str(out), "40", "--sleep", "0.05"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list_checkpoints(out / "checkpoints")) < 2 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list_checkpoints(out / "checkpoints")
    assert done, "no checkpoint was written before the kill"
    for ckpt in done:  # every checkpoint that looks finished loads whole
        for name in ("model", "ema", "optimizer", "rng"):
            load_file(str(ckpt / f"{name}.safetensors"))
        json.loads((ckpt / "state.json").read_text())
    assert not (out / "model.safetensors").exists()
    resumed = make_trainer(out, steps=40)
    assert resumed.fit().resumed_from == int(done[-1].name.split("_")[1])
    reference = make_trainer(tmp_path / "ref", steps=40)
    reference.fit()
    _assert_bitwise(_state(reference), _state(resumed))


@pytest.mark.slow
def test_ddp_two_ranks_gloo_hold_identical_weights(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(HERE / "toy_training.py"), str(tmp_path), "6"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    initial = make_trainer(tmp_path / "init", steps=1).model.state_dict()
    changed = False
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        changed |= not torch.equal(rank0[key], initial[key])
    assert changed, "DDP training did not update the weights"
    assert list_checkpoints(tmp_path / "checkpoints")[-1].name == "step_00000006"
