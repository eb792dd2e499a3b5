"""A deterministic evaluation of an unchanged agent is repeated, not run again: the same curve as measuring
every checkpoint afresh, fewer episodes; anything the evaluation depends on that changed runs it again."""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import rltransfer.evaluation as evaluation
from rltransfer.evaluation import Evaluator, policy_actor
from rltransfer.evaluation_together import evaluate_together


class CountingEnv(DummyVecEnv):
    """A CartPole vector env that counts the steps taken on it (all instances together)."""

    steps = 0

    def step_wait(self):
        CountingEnv.steps += 1
        return super().step_wait()


def _env(n: int = 2) -> DummyVecEnv:
    return CountingEnv([lambda: gym.make("CartPole-v1") for _ in range(n)])


def _learn(repeat: bool, monkeypatch, normalize: bool = False, deterministic: bool = True) -> tuple[dict, int]:
    """PPO on CartPole whose rollout (4 x 64 steps) spans four checkpoints 64 steps apart: the curve and the
    evaluation env steps it took."""
    if not repeat:
        monkeypatch.setattr(Evaluator, "repeat", lambda self, model, step: False)
    train = DummyVecEnv([lambda: gym.make("CartPole-v1") for _ in range(4)])
    if normalize:
        train = VecNormalize(train, norm_reward=False)

    def eval_env():
        env = _env()
        return VecNormalize(env, training=False, norm_reward=False) if normalize else env

    model = PPO("MlpPolicy", train, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    ev = Evaluator(eval_env, 64, 768, 4, deterministic, lambda r: r / 500, seed=0)
    CountingEnv.steps = 0
    model.learn(768, callback=ev)
    return ev.curve, CountingEnv.steps


def test_an_unchanged_policy_is_scored_once_with_the_same_curve(monkeypatch):
    repeated, fewer = _learn(True, monkeypatch)
    with monkeypatch.context() as m:
        afresh, steps = _learn(False, m)
    assert repeated == afresh  # bit for bit: the same returns, stds and scores at the same steps
    assert repeated["step"] == list(range(0, 769, 64))
    # 13 checkpoints, 4 policies (updates at 256, 512, 768): 4 measurements, the rest repeated.
    assert len(set(repeated["return"])) <= 4
    assert fewer < steps / 2


def test_changing_observation_statistics_are_measured_again(monkeypatch):
    # VecNormalize updates its statistics at every training step: no two checkpoints see the same agent.
    normalized, steps = _learn(True, monkeypatch, normalize=True)
    with monkeypatch.context() as m:
        afresh, steps_afresh = _learn(False, m, normalize=True)
    assert normalized == afresh
    assert steps == steps_afresh


def test_sampled_actions_are_measured_at_every_checkpoint(monkeypatch):
    calls = []
    real = evaluation.run_episodes
    monkeypatch.setattr(evaluation, "run_episodes", lambda *a, **k: calls.append(1) or real(*a, **k))
    curve, _ = _learn(True, monkeypatch, deterministic=False)
    assert len(calls) == len(curve["step"]) == 13


def test_deferred_evaluations_repeat_too():
    model = PPO("MlpPolicy", DummyVecEnv([lambda: gym.make("CartPole-v1")]), seed=0, device="cpu")
    ev = Evaluator(_env, 64, 256, 4, True, lambda r: r, seed=0)
    ev.defer = True
    for step in (0, 64, 128):
        ev.evaluate(model, step)
    act = policy_actor(model, True)
    CountingEnv.steps = 0
    Evaluator(_env, 64, 256, 4, True, lambda r: r, seed=0).evaluate(model, 0)
    once = CountingEnv.steps  # the env steps of one measurement
    CountingEnv.steps = 0
    evaluate_together([(0, ev, model)], lambda obs: {k: act(o) for k, o in obs.items()})
    assert CountingEnv.steps == once  # three checkpoints, one measurement
    assert ev.curve["step"] == [0, 64, 128]
    assert len(set(ev.curve["return"])) == 1 and ev.pending == []
    with torch.no_grad():  # the parameters changed: measured again
        for p in model.policy.parameters():
            p.add_(0.5)
    ev.evaluate(model, 192)
    evaluate_together([(0, ev, model)], lambda obs: {k: act(o) for k, o in obs.items()})
    assert CountingEnv.steps > once and ev.curve["step"] == [0, 64, 128, 192]
    fresh = Evaluator(_env, 64, 256, 4, True, lambda r: r, seed=0)
    fresh.evaluate(model, 192)
    assert fresh.curve["return"][0] == ev.curve["return"][-1]


def test_a_deferred_evaluation_scores_the_agent_as_it_was_when_it_fell_due():
    """The batched engine measures a seed's checkpoint later, with the other seeds' (a probe of source heads
    starts each seed at its own step, so their checkpoints fall at different steps of the batch): it must score
    the parameters and observation statistics the agent had at the checkpoint, not those it has when measured,
    and leave the agent's own as they are, bit for bit."""
    train = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1") for _ in range(2)]), norm_reward=False)
    model = PPO("MlpPolicy", train, seed=0, device="cpu")
    train.reset()
    for _ in range(20):  # observation statistics of their own
        train.step(torch.zeros(2, dtype=torch.int64).numpy())

    def eval_env():
        return VecNormalize(_env(), training=False, norm_reward=False)

    def alone(step: int) -> float:
        ev = Evaluator(eval_env, 64, 256, 4, True, lambda r: r, seed=0)
        ev.evaluate(model, step)
        return ev.curve["return"][0]

    deferred = Evaluator(eval_env, 64, 256, 4, True, lambda r: r, seed=0)
    deferred.defer = True
    then = alone(0)
    deferred.evaluate(model, 0)
    with torch.no_grad():  # the agent trains on: other parameters, other statistics
        for p in model.policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    train.obs_rms.mean = train.obs_rms.mean + 0.5
    now = alone(64)
    assert now != then  # the test can tell the two agents apart
    deferred.evaluate(model, 64)
    params = [p.detach().clone() for p in model.policy.parameters()]
    mean, var, count = train.obs_rms.mean.copy(), train.obs_rms.var.copy(), train.obs_rms.count
    act = policy_actor(model, True)
    evaluate_together([(0, deferred, model)], lambda obs: {k: act(o) for k, o in obs.items()})
    assert deferred.curve["step"] == [0, 64]
    assert deferred.curve["return"] == [then, now]
    assert all(torch.equal(p, q) for p, q in zip(model.policy.parameters(), params))
    assert (train.obs_rms.mean == mean).all() and (train.obs_rms.var == var).all() and train.obs_rms.count == count
