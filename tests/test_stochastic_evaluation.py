"""evaluation.deterministic: false samples the policy's actions: from a seeded generator of their
own, so a run's evaluations repeat exactly and never change what training draws; the probe and the
pre-training's source evaluation evaluate the same way."""

from __future__ import annotations

import pytest
import torch

import rltransfer.pretraining
import rltransfer.probing
from rltransfer import load_bundle, pretrain, transfer
from rltransfer.config import load_config
from rltransfer.evaluation import Evaluator
from rltransfer.transferring import eval_env_factory

TARGET = "very-long-heavy"


@pytest.fixture(scope="module")
def stochastic(tmp_path_factory):
    cfg = {
        "family": "cartpole",
        "source_tasks": ["short", "long"],
        "target_tasks": [TARGET],
        "conditioning": "none",
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}},
        "pretrain": {"timesteps": 256, "envs_per_task": 1, "eval_episodes": 2},
        "transfer": {"timesteps": 1024, "n_envs": 2},
        "evaluation": {"every": 256, "episodes": 4, "deterministic": False},
        "output_dir": str(tmp_path_factory.mktemp("stochastic")),
    }
    return cfg, load_bundle(pretrain(cfg).bundle_path)


def _run(cfg, bundle, strategy, every, seed=0, deterministic=False):
    c = load_config(cfg)
    ev = Evaluator(
        eval_env_factory(c, bundle, TARGET, 4), every, 1024, 4, deterministic, lambda r: r, seed=seed
    )  # fmt: skip
    res = transfer(cfg, bundle, TARGET, strategy, seed=0, callbacks=[ev], save=False)
    return res.model, ev.curve


def test_a_stochastic_evaluation_repeats_exactly_and_leaves_training_alone(stochastic):
    cfg, bundle = stochastic
    often, curve = _run(cfg, bundle, "finetune", every=256)
    rarely, _ = _run(cfg, bundle, "finetune", every=1024)
    again, curve_again = _run(cfg, bundle, "finetune", every=256)
    # Evaluating four times as often draws many more samples, none of them from training's generator.
    a, b = often.policy.state_dict(), rarely.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert curve == curve_again


def test_a_run_seed_draws_its_own_evaluation_samples(stochastic):
    cfg, bundle = stochastic
    _, seed0 = _run(cfg, bundle, "zero_shot", every=256, seed=0)
    _, seed1 = _run(cfg, bundle, "zero_shot", every=256, seed=1)
    _, seed0_again = _run(cfg, bundle, "zero_shot", every=256, seed=0)
    assert seed0 == seed0_again
    assert seed0["return"] != seed1["return"]  # the same agent, other action samples
    # Sampled, a fixed agent is measured afresh at each checkpoint (deterministic, it is repeated).
    assert len(set(seed0["return"])) > 1


def test_the_probe_and_the_source_evaluation_follow_evaluation_deterministic(stochastic, monkeypatch):
    cfg, bundle = stochastic
    seen: dict[str, list[bool]] = {"probe": [], "sources": []}

    def recording(where, real):
        def evaluate_policy(*args, **kwargs):
            seen[where].append(kwargs["deterministic"])
            return real(*args, **kwargs)

        return evaluate_policy

    monkeypatch.setattr(rltransfer.probing, "evaluate_policy", recording("probe", rltransfer.probing.evaluate_policy))
    monkeypatch.setattr(
        rltransfer.pretraining, "evaluate_policy", recording("sources", rltransfer.pretraining.evaluate_policy)
    )
    for deterministic in (False, True):
        c = {
            **cfg,
            "evaluation": {**cfg["evaluation"], "deterministic": deterministic},
            "transfer": {**cfg["transfer"], "head_init": "probe"},
        }
        pretrain(c, out_dir=f"{cfg['output_dir']}/det-{deterministic}")
        transfer(c, bundle, TARGET, "zero_shot", seed=0, save=False)
    assert seen["sources"] == [False, False, True, True]  # one per source task
    assert seen["probe"] == [False, False, True, True]  # one per source head
