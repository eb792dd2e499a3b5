"""Several runs' evaluations made together (the batched engine's) score each run as its evaluation alone
does, bit for bit: where their envs are a family's vector builds, every run's step is finished in one call
(``StepTogether(..., outcomes_only=True)``), and the returns are those of each env stepped on its own."""

from __future__ import annotations

import pytest
import torch
from stable_baselines3 import PPO

from rltransfer.envs import MultiTaskVecEnv, get_family
from rltransfer.envs.vector import JointPhysics
from rltransfer.evaluation import MAX_PARALLEL, Evaluator, policy_actor
from rltransfer.evaluation_together import evaluate_together


@pytest.mark.parametrize(
    "family,task,episodes",
    [
        ("cartpole", "short", 10),
        ("cartpole", "short", 40),  # two waves: 32 episodes side by side, then 8
        ("pendulum", "heavy-long", 4),
        ("pendulum", "default", 36),
    ],
)
def test_runs_evaluated_together_score_as_each_alone(family, task, episodes, monkeypatch):
    fam = get_family(family)

    def make_env() -> MultiTaskVecEnv:
        return MultiTaskVecEnv(fam, [fam.task(task)], "context", envs_per_task=min(episodes, MAX_PARALLEL))

    models = []
    for seed in range(3):  # three policies, each its own: episodes of many lengths
        model = PPO("MultiInputPolicy", make_env(), seed=seed, device="cpu", policy_kwargs={"net_arch": [16]})
        with torch.no_grad():
            for p in model.policy.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(seed)))
        models.append(model)
    alone = [Evaluator(make_env, 1, 1, episodes, True, float, seed=k) for k in range(3)]
    for ev, model in zip(alone, models):
        ev.evaluate(model, 0)
    together = [Evaluator(make_env, 1, 1, episodes, True, float, seed=k) for k in range(3)]
    for ev, model in zip(together, models):
        ev.defer = True
        ev.evaluate(model, 0)
    actors = [policy_actor(m, deterministic=True) for m in models]
    finished = []
    step_finished = JointPhysics.step_finished
    monkeypatch.setattr(JointPhysics, "step_finished", lambda self, a: finished.append(1) or step_finished(self, a))
    evaluate_together(
        [(k, ev, m) for k, (ev, m) in enumerate(zip(together, models))],
        lambda obs: {k: actors[k](o) for k, o in obs.items()},
    )
    assert finished  # the runs' steps were finished in one call
    assert [ev.curve for ev in together] == [ev.curve for ev in alone]
    returns = [r for ev in alone for r in ev.curve["return"]]
    assert len(set(returns)) > 1  # policies that score apart: not a comparison of constants
