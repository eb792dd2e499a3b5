"""The batched engine for SAC (rltransfer.agents.batched_sac): K seeds of SAC as one model. With one seed its
update is TransferSAC's (SB3's SAC.train with an entropy coefficient per task); a seed's run is bit-identical
whatever seeds share its batch; each seed comes out as a normal SB3 model; the SB3 code it restates is
guarded."""

from __future__ import annotations

import copy
import hashlib
import inspect

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common import buffers
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

import rltransfer
from rltransfer.agent_factory import architecture, build_model
from rltransfer.agents import batched_off_policy
from rltransfer.agents.batched_sac import BatchedSAC, unbatchable
from rltransfer.pretraining import source_env
from rltransfer.validation import resolve


def _model(seed: int, tasks: tuple[str, ...] = ("default",), **hyper):
    cfg = rltransfer.load_config(
        {"name": "batched-sac", "family": "pendulum", "source_tasks": list(tasks), "target_tasks": list(tasks[:1]),
         "agent": {"algo": "sac", "encoder": {"hidden": [16]}, "trunk": {"pi": [16], "vf": [16]},
                   "hyperparams": {"learning_starts": 50, "batch_size": 32, **hyper}}}
    )  # fmt: skip
    env = source_env(resolve(cfg), 1)
    return build_model(cfg.agent, env, architecture(cfg.agent, list(tasks), env.layout), seed=seed)


def test_a_train_freq_in_episodes_as_yaml_gives_it_reaches_sb3_and_trains_alone():
    """RL Zoo writes ``train_freq: [1, episode]``; YAML gives a list, which SB3 refuses (it takes a tuple)."""
    model = _model(0, train_freq=[1, "episode"])
    assert (model.train_freq.frequency, model.train_freq.unit.value) == (1, "episode")
    assert unbatchable(model) == "its training frequency is counted in episodes"


def _params(model) -> dict[str, torch.Tensor]:
    out = {k: v.detach().clone() for k, v in model.policy.named_parameters()}
    out["log_ent_coef"] = model.log_ent_coef.detach().clone()
    return out


def test_the_restated_sb3_methods_are_the_installed_ones():
    for name, version, sha in batched_off_policy.COPIED_LOOPS:
        source = inspect.getsource(getattr(OffPolicyAlgorithm, name))
        assert hashlib.sha256(source.encode()).hexdigest() == sha, f"SB3's OffPolicyAlgorithm.{name} differs from {version}'s"  # fmt: skip
    for qualname, version, sha in batched_off_policy.COPIED_SAMPLING:
        owner, method = qualname.split(".")
        source = inspect.getsource(getattr(getattr(buffers, owner), method))
        assert hashlib.sha256(source.encode()).hexdigest() == sha, f"SB3's {qualname} differs from {version}'s"


class _Legacy:
    """numpy's global generator behind ``integers``: what SB3's replay buffer draws its samples from."""

    def integers(self, low, high, size):
        return np.random.randint(low, high, size=size)


@pytest.mark.parametrize("tasks", [("default",), ("default", "heavy")])
def test_one_seed_update_is_transfer_sacs_train_to_1e6(tasks):
    """The same replay buffer, optimizer state, replay samples and noise: three batched gradient steps (K = 1)
    and TransferSAC.train leave every parameter (actor, critics, critic targets, the entropy coefficient of
    every task) within 1e-6 and log the same keys and values."""
    sb3 = _model(3, tasks)
    sb3.learn(200)  # a buffer, optimizer moments and per-task coefficients that have moved
    mine = copy.deepcopy(sb3)
    batch = BatchedSAC([mine])
    batch.replay_rngs = [_Legacy()]
    batch.action_rngs = [torch.default_generator]  # SB3's samples come from torch's global generator
    before = _params(sb3)
    for model in (sb3, batch):
        np.random.seed(5)
        torch.manual_seed(5)
        if model is sb3:
            sb3.train(3, sb3.batch_size)
        else:
            batch._train([0], 3)
    for name, p in _params(sb3).items():
        if "critic_target" not in name:
            assert not torch.equal(p, before[name]), name  # the update moved it
        torch.testing.assert_close(_params(mine)[name], p, atol=1e-6, rtol=0, msg=name)
    assert set(mine.logger.name_to_value) == set(sb3.logger.name_to_value)
    for key, value in sb3.logger.name_to_value.items():
        assert mine.logger.name_to_value[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


class Steps(BaseCallback):
    """Records a seed's rewards, and raises at a given step (a seed that fails)."""

    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.rewards: list[float] = []
        self.fail_at = fail_at

    def _on_step(self) -> bool:
        self.rewards.append(float(np.sum(self.locals["rewards"])))
        if self.fail_at is not None and self.num_timesteps >= self.fail_at:
            self.at_failure = _params(self.model)
            raise RuntimeError("this seed fails")
        return True


def _batch(seeds, steps=200, fail=None):
    models = [_model(s) for s in seeds]
    callbacks = [Steps(fail_at=120 if s == fail else None) for s in seeds]
    batch = BatchedSAC(models).learn(steps, callbacks)
    return {s: (m, cb, batch) for s, m, cb in zip(seeds, models, callbacks)}


def test_a_seed_is_bit_identical_whatever_shares_its_batch():
    alone = _batch([1])[1]
    for seeds in ([0, 1, 2], [7, 6, 5, 4, 3, 2, 1, 0]):
        other = _batch(seeds)[1]
        assert other[1].rewards == alone[1].rewards
        for name, p in _params(alone[0]).items():
            assert torch.equal(_params(other[0])[name], p), (seeds, name)
        assert other[0].replay_buffer.pos == alone[0].replay_buffer.pos == 200
    two = _batch([0, 1])
    assert not torch.equal(_params(two[0][0])["actor.heads.mu.weight"], _params(two[1][0])["actor.heads.mu.weight"])


def test_a_failing_seed_is_recorded_and_the_others_go_on_unchanged():
    alone = _batch([0])[0]
    runs = _batch([0, 1], fail=1)
    model, callback, batch = runs[1]
    assert list(batch.failed) == [1] and "this seed fails" in str(batch.failed[1].error)
    assert "RuntimeError" in batch.failed[1].traceback
    assert model.num_timesteps == 120 and runs[0][0].num_timesteps == 200
    for name, p in _params(alone[0]).items():
        assert torch.equal(_params(runs[0][0])[name], p), name
    # the failed seed's parameters stopped moving when it failed (the others trained on for 80 steps)
    for name, p in callback.at_failure.items():
        assert torch.equal(p, _params(model)[name]), name


def test_each_seed_is_a_normal_sb3_model_that_resumes_where_the_batch_left_it(tmp_path):
    runs = _batch([0, 1])
    for s, (model, _, _) in runs.items():
        model.save(tmp_path / f"seed-{s}.zip")
        loaded = SAC.load(tmp_path / f"seed-{s}.zip", device="cpu")
        for name, p in model.policy.named_parameters():
            assert torch.equal(dict(loaded.policy.named_parameters())[name], p), name
        assert torch.equal(loaded.log_ent_coef, model.log_ent_coef)
        state = model.actor.optimizer.state_dict()["state"]
        assert state and all(int(st["step"]) == model._n_updates for st in state.values())
        assert int(model.ent_coef_optimizer.state_dict()["state"][0]["step"]) == model._n_updates
    # a model that goes on training in another batch takes its optimizer state with it (Adam's step count
    # goes on from where it was, and the batch exports it again)
    model = runs[0][0]
    BatchedSAC([model, _model(5)]).learn(100, reset_num_timesteps=[False, True])
    assert model.num_timesteps == 300 and model._n_updates == 250
    assert all(int(st["step"]) == 250 for st in model.critic.optimizer.state_dict()["state"].values())


def test_seeds_that_start_at_different_steps_each_train_from_their_own_learning_starts():
    """A seed whose first steps went elsewhere (a probe of source heads) starts its updates earlier than the
    others in its batch; its own Adam step count, moments and schedule are its own: the same as alone."""
    models = [_model(0), _model(1)]
    models[1].num_timesteps = 30
    BatchedSAC(models).learn([200, 170], reset_num_timesteps=[True, False])
    alone = _model(1)
    alone.num_timesteps = 30
    BatchedSAC([alone]).learn(170, reset_num_timesteps=False)
    other = _model(0)
    BatchedSAC([other]).learn(200)
    assert models[1].num_timesteps == alone.num_timesteps == 200 and models[0].num_timesteps == 200
    assert (models[0]._n_updates, models[1]._n_updates) == (150, 150)
    for name, p in _params(alone).items():
        assert torch.equal(_params(models[1])[name], p), name
        assert torch.equal(_params(models[0])[name], _params(other)[name]), name


def test_batched_predict_gives_each_models_deterministic_actions():
    models = [_model(s, ("default", "heavy")) for s in (0, 1, 2)]
    batch = BatchedSAC(models)
    obs = {k: m.env.reset() for k, m in enumerate(models)}
    obs = {k: m.env.step(m.predict(obs[k], deterministic=True)[0])[0] for k, m in enumerate(models)}
    got = batch.predict({0: obs[0], 2: obs[2]})
    assert sorted(got) == [0, 2]
    for k in (0, 2):
        np.testing.assert_allclose(got[k], models[k].predict(obs[k], deterministic=True)[0], atol=1e-5)


def test_what_cannot_batch_says_why():
    assert "action noise" in unbatchable(_model(0, action_noise=NormalActionNoise(np.zeros(1), np.ones(1))))
    assert "episodes" in unbatchable(_model(0, train_freq=(1, "episode")))
    plain = SAC("MlpPolicy", _model(0).env, seed=0, device="cpu")
    assert "is not rltransfer's SAC" in unbatchable(plain)
    with pytest.raises(ValueError, match="differ in batch_size"):
        BatchedSAC([_model(0), _model(1, batch_size=16)])


class Locals(BaseCallback):
    """Records the type and shape of every local a callback is given at its first step."""

    def _on_step(self) -> bool:
        if not hasattr(self, "seen"):
            self.seen = {k: (type(v).__name__, tuple(getattr(v, "shape", ()))) for k, v in self.locals.items()}
        return True


def test_a_callback_sees_the_locals_sb3s_rollout_gives_it():
    """A callback's ``locals`` in a batched step: every name the engine passes is one SB3's
    ``collect_rollouts`` passes, of the same type and shape."""
    batched, alone = Locals(), Locals()
    BatchedSAC([_model(0)]).learn(300, [batched])
    _model(0).learn(300, alone)
    assert batched.seen.keys() <= alone.seen.keys()
    assert {k: alone.seen[k] for k in batched.seen} == batched.seen
