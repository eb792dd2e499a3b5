"""MultiDiscrete and MultiBinary actions (PPO) and a Box of 2-d actions (PPO and SAC), as SB3 takes them: a family
of one's own that acts in them pre-trains, transfers with every strategy and evaluates, per process and batched,
its env given actions in its space's shape; a seed's run is the same in any batch; what SB3 cannot act in is
refused, saying why. (That the batched update is SB3's with one seed,
kickstarting included, ``tests/test_batched.py`` checks for these spaces with the others.)"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from gymnasium import spaces
from plane import KINDS, plane_family, transfer_with_every_strategy
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from test_batched import _batch, _model, _params

from rltransfer.agents.batched_ppo import BatchedPPO
from rltransfer.bundle import load_bundle
from rltransfer.config import load_config
from rltransfer.envs.checks import check_layout
from rltransfer.errors import ConfigError
from rltransfer.evaluation import policy_actor
from rltransfer.target_env import wrap_target_env
from rltransfer.validation import validate

pytestmark = pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")


@pytest.fixture(autouse=True)
def families():
    for name in KINDS:
        plane_family(name)


@pytest.mark.parametrize("family", list(KINDS))
def test_a_seed_is_bit_identical_whatever_shares_its_batch(family):
    alone = _batch([1], steps=128, family=family)[1]
    other = _batch([2, 1, 0], steps=128, family=family)[1]
    assert other[1].rewards == alone[1].rewards
    for name, p in _params(alone[0]).items():
        assert torch.equal(_params(other[0])[name], p), name


@pytest.mark.parametrize("family", list(KINDS))
def test_the_rollout_acts_in_the_space_and_stores_each_policys_log_probabilities(family):
    models = [_model(s, family) for s in (0, 1)]
    batch = BatchedPPO(models)
    cbs = [m._setup_learn(64, None)[1] for m in models]
    assert batch._collect_rollouts(cbs, [0, 1]) == [0, 1]  # Plane.step asserts that every action is in its space
    for m in models:
        buf = m.rollout_buffer
        obs = {k: torch.as_tensor(v).flatten(0, 1) for k, v in buf.observations.items()}
        actions = torch.as_tensor(buf.actions.astype(np.float32)).flatten(0, 1)  # as SB3's buffer samples them
        assert actions.shape[-1] == np.prod(KINDS[family].shape)  # a Box of 2-d actions flat, as SB3 stores it
        with torch.no_grad():
            values, log_prob, _ = m.policy.evaluate_actions(obs, actions)
        np.testing.assert_allclose(buf.values.flatten(), values.flatten().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(buf.log_probs.flatten(), log_prob.numpy(), rtol=1e-5, atol=1e-5)
        assert len(np.unique(buf.actions.reshape(-1, actions.shape[-1]), axis=0)) > 3  # sampled, not one mode


@pytest.mark.parametrize("family", list(KINDS))
def test_batched_predict_gives_each_models_deterministic_actions(family):
    models = [_model(s, family) for s in (0, 1, 2)]
    with torch.no_grad():  # policies far from uniform: modes that differ between seeds and observations
        for m in models:
            for name, p in m.policy.named_parameters():
                if name.startswith("heads.action"):
                    p.normal_(0, 3, generator=torch.Generator().manual_seed(len(name) + m.seed))
    batch = BatchedPPO(models)
    obs = {k: m.env.reset() for k, m in enumerate(models)}
    got = batch.predict(obs)
    for k, m in enumerate(models):
        np.testing.assert_array_equal(got[k], m.predict(obs[k], deterministic=True)[0])
    assert any(not np.array_equal(got[0], got[k]) for k in (1, 2))


@pytest.mark.parametrize("family", list(KINDS))
def test_the_evaluations_actor_gives_predicts_actions(family):
    """``policy_actor`` restates ``predict`` without its per-call overhead: the same actions, in the space's shape."""
    model = _model(4, family)
    obs = model.env.reset()
    for deterministic in (True, False):
        torch.manual_seed(5)
        got = policy_actor(model, deterministic)(obs)
        torch.manual_seed(5)
        np.testing.assert_array_equal(got, model.predict(obs, deterministic=deterministic)[0])
        assert got.shape == (model.n_envs, *KINDS[family].shape)


@pytest.mark.parametrize("batch_seeds", [True, False])
@pytest.mark.parametrize("family", list(KINDS))
def test_a_family_of_multi_actions_pre_trains_transfers_with_every_strategy_and_evaluates(
    family, batch_seeds, tmp_path
):
    result, _ = transfer_with_every_strategy(family, "ppo", batch_seeds, tmp_path)
    assert load_bundle(result.run_dir / "pretrain/bundle").policy.action_space == KINDS[family]
    model = PPO.load(result.run_dir / "runs/fast/kickstart/seed-1/model.zip", device="cpu")
    assert model.action_space == KINDS[family]
    env = wrap_target_env(model, Monitor(plane_family(family).make("fast")))
    _, lengths = evaluate_policy(model, env, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [30, 30]


@pytest.mark.parametrize("batch_seeds", [True, False])
def test_sac_acts_in_a_box_of_2d_actions_with_every_strategy(batch_seeds, tmp_path):
    """SAC as SB3's: the squashed actions reshaped to the space's (1, 2) before they reach the env (which asserts
    it) and before the evaluation's do (they failed to broadcast against the bounds)."""
    result, _ = transfer_with_every_strategy("plane-box-2d", "sac", batch_seeds, tmp_path)
    model = SAC.load(result.run_dir / "runs/fast/finetune/seed-1/model.zip", device="cpu")
    assert model.action_space == KINDS["plane-box-2d"]
    env = wrap_target_env(model, Monitor(plane_family("plane-box-2d").make("fast")))
    _, lengths = evaluate_policy(model, env, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [30, 30]  # Plane.step asserts that every action is in its space


def config(family: str, algo: str = "ppo"):
    return load_config({"name": family, "family": family, "agent": {"algo": algo}})


@pytest.mark.parametrize(
    "space,says",
    [
        (spaces.MultiDiscrete([3, 3], start=[1, 0]), r"actions start at \[1, 0\].*SB3's agents act from 0"),
        (spaces.Discrete(3, start=-1), r"actions start at -1.*SB3's agents act from 0"),
        (spaces.MultiDiscrete([[3, 3], [2, 2]]), r"of shape \(2, 2\).*flatten the MultiDiscrete"),
        (spaces.MultiBinary([2, 2]), r"of shape \(2, 2\).*flatten the MultiBinary"),
        (spaces.Box(np.array([-1, -np.inf]), 1.0), r"not bounded on both sides.*finite bounds"),  # was: 'hyperparams'
    ],
    ids=["MultiDiscrete-start", "Discrete-start", "MultiDiscrete-2d", "MultiBinary-2d", "Box-unbounded"],
)
def test_actions_sb3_does_not_act_in_are_refused_saying_why(space, says):
    """When the config loads, and by ``families --check`` (its "spaces" check passed them)."""
    family = plane_family("plane-odd", space)
    with pytest.raises(ConfigError, match=rf"config key 'family': family 'plane-odd' acts in .*{says}"):
        validate(config("plane-odd"))
    (check,) = check_layout(family)
    assert not check.ok and re.match(rf"family 'plane-odd' acts in .*{says}", check.detail)


@pytest.mark.parametrize("algo", ["dqn", "sac"])
def test_the_off_policy_algorithms_refuse_multi_actions_naming_ppo(algo):
    with pytest.raises(ConfigError, match=r"config key 'agent.algo': .*acts in MultiDiscrete.*algorithms for it: ppo"):
        validate(config("plane-md", algo))
