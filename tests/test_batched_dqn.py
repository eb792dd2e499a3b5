"""The batched engine for DQN (rltransfer.agents.batched_dqn): K seeds of DQN as one model. With one seed its
update is TransferDQN's (SB3's DQN.train); a seed's run is bit-identical whatever seeds share its batch, its
target network and exploration its own; each seed comes out as a normal SB3 model."""

from __future__ import annotations

import copy
import hashlib
import inspect

import numpy as np
import pytest
import torch
from stable_baselines3 import DQN

import rltransfer
from rltransfer.agent_factory import architecture, build_model
from rltransfer.agents import batched_dqn
from rltransfer.agents.batched_dqn import BatchedDQN, unbatchable
from rltransfer.pretraining import source_env
from rltransfer.validation import resolve


def _model(seed: int, tasks: tuple[str, ...] = ("default",), **hyper):
    cfg = rltransfer.load_config(
        {"name": "batched-dqn", "family": "cartpole", "source_tasks": list(tasks), "target_tasks": list(tasks[:1]),
         "agent": {"algo": "dqn", "encoder": {"hidden": [16]}, "trunk": {"pi": [16], "vf": [16]},
                   "hyperparams": {"learning_starts": 50, "batch_size": 32, "target_update_interval": 40,
                                   "exploration_fraction": 0.5, **hyper}}}
    )  # fmt: skip
    env = source_env(resolve(cfg), 2)
    return build_model(cfg.agent, env, architecture(cfg.agent, list(tasks), env.layout), seed=seed)


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.named_parameters()}


def test_the_restated_sb3_methods_are_the_installed_ones():
    for name, version, sha in batched_dqn.COPIED_FROM:
        source = inspect.getsource(getattr(DQN, name))
        assert hashlib.sha256(source.encode()).hexdigest() == sha, f"SB3's DQN.{name} differs from {version}'s"


class _Legacy:
    def integers(self, low, high, size):
        return np.random.randint(low, high, size=size)


@pytest.mark.parametrize("tasks", [("default",), ("default", "long")])
def test_one_seed_update_is_transfer_dqns_train_to_1e6(tasks):
    """The same replay buffer, optimizer state and replay samples: three batched gradient steps (K = 1) and
    TransferDQN.train (SB3's DQN.train) leave every parameter within 1e-6 and log the same."""
    sb3 = _model(3, tasks)
    sb3.learn(300)
    mine = copy.deepcopy(sb3)
    batch = BatchedDQN([mine])
    batch.replay_rngs = [_Legacy()]
    before = _params(sb3)
    np.random.seed(5)
    sb3.train(3, sb3.batch_size)
    np.random.seed(5)
    batch._train([0], 3)
    for name, p in _params(sb3).items():
        if "q_net_target" not in name:
            assert not torch.equal(p, before[name]), name
        torch.testing.assert_close(_params(mine)[name], p, atol=1e-6, rtol=0, msg=name)
    assert set(mine.logger.name_to_value) == set(sb3.logger.name_to_value)
    for key, value in sb3.logger.name_to_value.items():
        assert mine.logger.name_to_value[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def _batch(seeds, steps=400):
    models = [_model(s) for s in seeds]
    BatchedDQN(models).learn(steps)
    return {s: m for s, m in zip(seeds, models)}


def test_a_seed_is_bit_identical_whatever_shares_its_batch():
    alone = _batch([1])[1]
    assert alone._n_updates > 0 and alone.exploration_rate < 1.0
    for seeds in ([0, 1, 2], [7, 6, 5, 4, 3, 2, 1, 0]):
        other = _batch(seeds)[1]
        for name, p in _params(alone).items():
            assert torch.equal(_params(other)[name], p), (seeds, name)
        assert np.array_equal(other.replay_buffer.actions, alone.replay_buffer.actions)
    two = _batch([0, 1])
    assert not torch.equal(_params(two[0])["q_net.heads.q.weight"], _params(two[1])["q_net.heads.q.weight"])
    # the target network followed the Q-network (every 40 steps): it is neither the start nor the Q-network
    target = {n[len("q_net_target.") :]: p for n, p in _params(alone).items() if n.startswith("q_net_target.")}
    online = {n[len("q_net.") :]: p for n, p in _params(alone).items() if n.startswith("q_net.")}
    start = _params(_model(1))
    assert not all(torch.equal(p, start["q_net_target." + n]) for n, p in target.items())
    assert not all(torch.equal(p, online[n]) for n, p in target.items())


def test_each_seed_is_a_normal_sb3_model(tmp_path):
    runs = _batch([0, 1], steps=200)
    for s, model in runs.items():
        model.save(tmp_path / f"seed-{s}.zip")
        loaded = DQN.load(tmp_path / f"seed-{s}.zip", device="cpu")
        for name, p in model.policy.named_parameters():
            assert torch.equal(dict(loaded.policy.named_parameters())[name], p), name
        state = model.policy.optimizer.state_dict()["state"]
        assert state and all(int(st["step"]) == model._n_updates for st in state.values())


def test_batched_predict_gives_each_models_greedy_actions():
    models = [_model(s, ("default", "long")) for s in (0, 1, 2)]
    batch = BatchedDQN(models)
    obs = {k: m.env.reset() for k, m in enumerate(models)}
    got = batch.predict({0: obs[0], 2: obs[2]})
    for k in (0, 2):
        np.testing.assert_array_equal(got[k], models[k].predict(obs[k], deterministic=True)[0])


def test_what_cannot_batch_says_why():
    assert "episodes" in unbatchable(_model(0, train_freq=(1, "episode")))
    assert "is not rltransfer's DQN" in unbatchable(DQN("MlpPolicy", _model(0).env, seed=0, device="cpu"))
    with pytest.raises(ValueError, match="differ in target_update_interval"):
        BatchedDQN([_model(0), _model(1, target_update_interval=10)])


def test_a_seed_on_images_is_bit_identical_whatever_shares_its_batch():
    """MiniGrid's images: a CNN run through ``vmap`` and replay buffers of Dict observations (the image beside
    the task's entries)."""
    pytest.importorskip("minigrid")

    def models(seeds):
        cfg = rltransfer.load_config(
            {"name": "batched-dqn-images", "family": "minigrid", "source_tasks": ["empty-5"], "target_tasks": ["empty-5"],
             "agent": {"algo": "dqn", "encoder": {"type": "cnn", "hidden": [16]}, "trunk": {"pi": [16], "vf": [16]},
                       "hyperparams": {"learning_starts": 50, "batch_size": 16, "buffer_size": 500}}}
        )  # fmt: skip
        out = []
        for s in seeds:
            env = source_env(resolve(cfg), 2)
            out.append(build_model(cfg.agent, env, architecture(cfg.agent, ["empty-5"], env.layout), seed=s))
        BatchedDQN(out).learn(150)
        return dict(zip(seeds, out))

    alone = models([1])[1]
    assert type(alone.replay_buffer).__name__ == "DictReplayBuffer" and alone._n_updates > 0
    batch = models([0, 1, 2])
    for name, p in _params(alone).items():
        assert torch.equal(_params(batch[1])[name], p), name
    assert not torch.equal(_params(batch[0])["q_net.heads.q.weight"], _params(batch[1])["q_net.heads.q.weight"])
