"""The SB3 update loops restated here (PPO.train for kickstarting, SAC.train for per-task entropy
coefficients): guarded against the installed SB3, equal to it in every parameter, logging its keys."""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC

import rltransfer
from rltransfer.agent_factory import architecture, build_model
from rltransfer.agents import multitask_sac, transfer_ppo
from rltransfer.agents.transfer_ppo import KickstartPPO
from rltransfer.hyperparameters import SETUP_CHECKS_FROM
from rltransfer.pretraining import source_env
from rltransfer.validation import resolve


@pytest.mark.parametrize("module", [transfer_ppo, multitask_sac])
def test_the_copied_sb3_method_is_the_installed_one(module):
    """Fails when the installed SB3's method is not the one the copy restates: compare the copy with the
    new source, then record the new version and checksum in COPIED_FROM (and pyproject's SB3 range)."""
    qualname, version, sha = module.COPIED_FROM
    _, cls, method = qualname.split(".")
    source = inspect.getsource(getattr(getattr(importlib.import_module("stable_baselines3"), cls), method))
    installed = importlib.import_module("stable_baselines3").__version__
    assert hashlib.sha256(source.encode()).hexdigest() == sha, (
        f"SB3 {installed}'s {cls}.{method} differs from {version}'s, which {module.__name__} restates"
    )


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def _after(model, update, *args):
    """The parameters after ``update`` and the keys it logged, from the same RNG state each time."""
    model.logger.name_to_value.clear()
    np.random.seed(7)
    torch.manual_seed(7)
    update(model, *args)
    return _state(model), set(model.logger.name_to_value)


def _model(family: str, algo: str, source: str, hyperparams: dict):
    cfg = rltransfer.load_config(
        {"name": "copy", "family": family, "source_tasks": [source], "target_tasks": [source],
         "agent": {"algo": algo, "encoder": {"hidden": [16]}, "trunk": {"pi": [16], "vf": [16]}, "hyperparams": hyperparams}}
    )  # fmt: skip
    setup = resolve(cfg)
    env = source_env(setup, 2)
    return build_model(cfg.agent, env, architecture(cfg.agent, [source], env.layout), seed=3)


PPO_HYPER = {"n_steps": 32, "batch_size": 16, "n_epochs": 3, "clip_range_vf": 0.2}


def _kickstart(beta: float) -> KickstartPPO:
    """A kickstarting student after one rollout (and one update): the same one each call."""
    base = _model("cartpole", "ppo", "default", PPO_HYPER)
    teacher = copy.deepcopy(base.policy)  # another policy than the student's start, so that the term would act
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    model = KickstartPPO(
        type(base.policy), base.env, policy_kwargs=base.policy_kwargs, seed=3, device="cpu",
        teacher=teacher, beta=beta, anneal=1.0, **PPO_HYPER,
    )  # fmt: skip
    model.learn(64)
    model._current_progress_remaining = 0.5  # mid-budget: the term's weight is beta / 2
    return model


def test_kickstart_without_its_term_is_sb3s_ppo_update_and_logs_its_keys():
    # Two identical students with the same rollout: one updated by the copy (beta 0), one by SB3's PPO.train.
    a, b = _kickstart(0.0), _kickstart(0.0)
    before = _state(a)
    copied, copied_keys = _after(a, KickstartPPO._kickstart_train)
    sb3, sb3_keys = _after(b, PPO.train)
    assert any(not torch.equal(sb3[k], before[k]) for k in sb3)  # the update did something to compare
    for key in sb3:
        torch.testing.assert_close(copied[key], sb3[key], rtol=0, atol=1e-6, msg=key)
    assert sb3_keys <= copied_keys, sorted(sb3_keys - copied_keys)
    assert copied_keys - sb3_keys == {"train/kickstart_kl", "train/kickstart_beta"}


def test_transfer_sac_with_one_task_is_sb3s_sac_update_and_logs_its_keys():
    def sac():
        model = _model("pendulum", "sac", "default", {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000})
        model.learn(96)
        return model

    a, b = sac(), sac()
    before = _state(a)
    copied, copied_keys = _after(a, type(a).train, 4, 32)
    sb3, sb3_keys = _after(b, SAC.train, 4, 32)
    assert any(not torch.equal(sb3[k], before[k]) for k in sb3)
    for key in sb3:
        torch.testing.assert_close(copied[key], sb3[key], rtol=0, atol=1e-6, msg=key)
    assert sb3_keys <= copied_keys, sorted(sb3_keys - copied_keys)


@pytest.mark.parametrize("qualname", sorted(SETUP_CHECKS_FROM[1]))
def test_the_setup_checks_validation_restates_are_the_installed_sb3s(qualname):
    """Fails when SB3's ``_setup_model`` changed: compare rltransfer.hyperparameters' ``_setup_checks`` with the new source
    (a check added or changed there), then record the new version and checksum in SETUP_CHECKS_FROM."""
    version, checksums = SETUP_CHECKS_FROM
    module, _, attr = qualname.rpartition("._setup_model")[0].rpartition(".")
    source = inspect.getsource(getattr(importlib.import_module(module), attr)._setup_model)
    installed = importlib.import_module("stable_baselines3").__version__
    assert hashlib.sha256(source.encode()).hexdigest() == checksums[qualname], (
        f"SB3 {installed}'s {attr}._setup_model differs from {version}'s, whose checks rltransfer.hyperparameters restates"
    )
