"""head_init: probe: every source head is tried on the target, the best starts the target head, and the
run is charged for the probe's steps."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from rltransfer import load_bundle, pretrain, transfer
from rltransfer.agents import component_state
from rltransfer.config import load_config
from rltransfer.envs import get_family
from rltransfer.errors import ConfigError
from rltransfer.evaluation import Evaluator
from rltransfer.loading import locate_target
from rltransfer.probing import probe_sources
from rltransfer.transferring import eval_env_factory

TARGET = "very-long-heavy"


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    cfg = {
        "family": "cartpole",
        "source_tasks": ["short", "long", "heavy-gravity"],
        "target_tasks": [TARGET],
        "conditioning": "none",
        "agent": {"hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}},
        "pretrain": {"timesteps": 512, "envs_per_task": 1, "eval_episodes": 1},
        "transfer": {"timesteps": 2048, "n_envs": 2, "head_init": "probe", "probe_episodes": 2},
        "evaluation": {"every": 1024, "episodes": 3},
        "output_dir": str(tmp_path_factory.mktemp("probe")),
    }
    return cfg, load_bundle(pretrain(cfg).bundle_path)


def _run(cfg, bundle, strategy, **transfer_cfg):
    cfg = {**cfg, "transfer": {**cfg["transfer"], **transfer_cfg}}
    c = load_config(cfg)
    ev = Evaluator(eval_env_factory(c, bundle, TARGET, 3), 1024, c.transfer.timesteps, 3, True, lambda r: r)
    return transfer(cfg, bundle, TARGET, strategy, seed=0, callbacks=[ev], save=False), ev


def test_probe_tries_every_head_and_keeps_the_best(probed):
    cfg, bundle = probed
    family = get_family("cartpole")
    task = family.task(TARGET)
    spec = locate_target(bundle, family, task)
    order = [spec.nearest] + [n for n in bundle.task_names if n != spec.nearest]
    probe = probe_sources(bundle, family, task, spec.onehot_index, order, episodes=2, seed=0)
    assert list(probe.returns) == order
    assert probe.source == max(order, key=lambda n: probe.returns[n])  # ties: the nearest first
    assert 2 * len(order) * 8 <= probe.steps <= 2 * len(order) * 500  # CartPole episodes: 8 to 500 steps
    assert probe_sources(bundle, family, task, spec.onehot_index, order, episodes=2, seed=0) == probe


def test_a_probed_head_is_the_chosen_source_head_and_the_probe_is_charged(probed):
    cfg, bundle = probed
    res, ev = _run(cfg, bundle, "zero_shot")
    probe = res.lineage.probe
    assert res.lineage.nearest_source == probe.source and probe.steps > 0
    family = get_family("cartpole")
    assert probe.nearest_by_context == locate_target(bundle, family, family.task(TARGET)).nearest
    state = component_state(res.model.policy)
    head = {k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"heads.{TARGET}.")}
    assert head and all(torch.equal(v, bundle.tensors[f"heads.{probe.source}.{k}"]) for k, v in head.items())
    # The first point is the agent that starts target training (the chosen head), at the probe's step
    # count; no checkpoint before it scores another agent (it scored the nearest-by-context head before).
    charged = probe.steps
    assert ev.curve["step"][0] == charged and all(t > charged for t in ev.curve["step"][1:])
    assert ev.curve["step"][-1] == 2048 and set(ev.curve["step"][1:]) == {t for t in (1024, 2048) if t > charged}
    # It is the chosen-head agent's score: evaluating that agent (zero_shot: never updated) again gives it.
    again = Evaluator(eval_env_factory(load_config(cfg), bundle, TARGET, 3), 1024, 2048, 3, True, lambda r: r)
    again.evaluate(res.model, charged)
    assert again.curve["return"] == ev.curve["return"][:1]


class StartStep(BaseCallback):
    def _on_training_start(self) -> None:
        self.start = self.num_timesteps

    def _on_step(self) -> bool:
        return True


def test_a_trained_run_starts_after_the_probe(probed):
    cfg, bundle = probed
    c = load_config(cfg)
    ev = Evaluator(eval_env_factory(c, bundle, TARGET, 3), 1024, 2048, 3, True, lambda r: r)
    start = StartStep()
    res = transfer(cfg, bundle, TARGET, "finetune", seed=0, callbacks=[start, ev], save=False)
    assert start.start == res.lineage.probe.steps > 0  # training's first step is the probe's last + 1
    charged = res.lineage.probe.steps
    assert res.model.num_timesteps >= 2048 and ev.curve["step"][0] == charged and ev.curve["step"][-1] == 2048


def test_a_probe_longer_than_the_budget_is_refused(probed):
    cfg, bundle = probed
    with pytest.raises(ConfigError, match="probe_episodes"):
        _run(cfg, bundle, "finetune", timesteps=10)
