"""The batched engine (rltransfer.agents.batched_ppo): K seeds of PPO as one model. With one seed it is
SB3's PPO update; a seed's run is bit-identical whatever seeds share its batch; each seed comes out as a
normal SB3 model; the SB3 loops it restates are guarded."""

from __future__ import annotations

import copy
import hashlib
import inspect

import numpy as np
import pytest
import torch
from plane import KINDS, SEEN, plane_family
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

import rltransfer
from rltransfer.agent_factory import architecture, build_model
from rltransfer.agents import batched_ppo
from rltransfer.agents.adapters import add_adapters
from rltransfer.agents.batched_ppo import BatchedPPO, unbatchable
from rltransfer.agents.progressive import ProgressivePolicy
from rltransfer.agents.stacked import StackedAdam, StackedPolicies
from rltransfer.agents.transfer_ppo import KickstartPPO
from rltransfer.pretraining import source_env
from rltransfer.validation import resolve

pytestmark = pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")

HYPER = {"n_steps": 32, "batch_size": 24, "n_epochs": 3, "clip_range_vf": 0.2, "learning_rate": "lin_0.001"}


def _model(seed: int, family: str = "cartpole", task: str | list[str] = "default", algo_cls=None, extra=None, **hyper):
    if family in KINDS or family in SEEN:  # a family of the tests' own (multi-actions, discrete observations)
        plane_family(family)
    tasks = [task] if isinstance(task, str) else task
    extra = dict(extra or {})
    agent = {"algo": "ppo", "encoder": {"hidden": [16]}, "trunk": {"pi": [16], "vf": [16]},
             "hyperparams": {**HYPER, **hyper}, **extra.pop("agent", {})}  # fmt: skip
    cfg = rltransfer.load_config(
        {"name": "batched", "family": family, "source_tasks": tasks, "target_tasks": tasks[:1], "agent": agent, **extra}
    )
    env = source_env(resolve(cfg), 2)
    return build_model(cfg.agent, env, architecture(cfg.agent, tasks, env.layout), seed=seed, algo_cls=algo_cls)


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.named_parameters()}


def test_the_restated_sb3_methods_are_the_installed_ones():
    for name, version, sha in batched_ppo.COPIED_LOOPS:
        source = inspect.getsource(getattr(OnPolicyAlgorithm, name))
        assert hashlib.sha256(source.encode()).hexdigest() == sha, (
            f"SB3's OnPolicyAlgorithm.{name} differs from {version}'s"
        )
    qualname, version, sha = batched_ppo.COPIED_FROM
    assert hashlib.sha256(inspect.getsource(PPO.train).encode()).hexdigest() == sha, (
        f"SB3's PPO.train differs from {version}'s"
    )


def _update_both(sb3: PPO, mine: PPO) -> None:
    """``sb3`` collects a rollout; ``mine`` takes a copy of it; then SB3's own update of ``sb3`` and the
    batched one (K = 1) of ``mine``, with the same minibatch order."""
    _, callback = sb3._setup_learn(1000, None)
    sb3.collect_rollouts(sb3.env, callback, sb3.rollout_buffer, sb3.n_steps)
    sb3._update_current_progress_remaining(sb3.num_timesteps, 1000)
    mine._setup_learn(1000, None)
    mine.rollout_buffer = copy.deepcopy(sb3.rollout_buffer)
    mine._current_progress_remaining = sb3._current_progress_remaining
    mine.num_timesteps = sb3.num_timesteps
    batch = BatchedPPO([mine])
    assert _params(sb3).keys() == _params(mine).keys()
    np.random.seed(11)
    sb3.train()
    np.random.seed(11)
    batch.minibatch_rngs = [np.random.mtrand._rand]  # SB3 draws its minibatch order from numpy's global RNG
    batch._train([0])


CNN = {"agent": {"encoder": {"type": "cnn", "hidden": [16]}}}


@pytest.mark.parametrize(
    "family,task,extra,atol,log_atol",
    [
        ("cartpole", "default", None, 1e-6, 1e-7),
        ("pendulum", "default", None, 1e-6, 1e-7),
        # MiniGrid's CNN runs through vmap, whose convolutions sum in another order than one seed's, and Adam
        # scales up that rounding where a gradient is near zero: the largest difference after the update is
        # 1.5e-6 on an Intel Xeon and 3.8e-6 on an AMD EPYC (the dense layer after the convolutions), while
        # the update moves every parameter by 3.8e-3 to 7.4e-3, and another minibatch order by 1e-2. The
        # losses logged differ by up to 2.1e-6 there (the total loss), and by 5.6e-5 to 2.7e-2 with another order.
        ("minigrid", "empty-5", CNN, 1e-5, 1e-5),
        ("plane-md", "default", None, 1e-6, 1e-7),  # MultiDiscrete: SB3's MultiCategorical
        ("plane-mb", "default", None, 1e-6, 1e-7),  # MultiBinary: SB3's Bernoulli
        ("plane-box-2d", "default", None, 1e-6, 1e-7),  # a Box of 2-d actions
        ("plane-sees-d", "default", None, 1e-6, 1e-7),  # a Discrete observation, one-hot encoded
        ("plane-sees-mb", "default", None, 1e-6, 1e-7),  # a MultiBinary observation
    ],
)
def test_one_seed_update_is_sb3s_ppo_train_to_1e6(family, task, extra, atol, log_atol):
    """The same rollout and minibatch order: the batched update (K = 1) and SB3's PPO.train leave every
    parameter within 1e-6 (1e-5 through a CNN) and log the same keys (Discrete, Box, MultiDiscrete and MultiBinary
    actions; an image, a Discrete and a MultiBinary observation)."""
    sb3, mine = _model(3, family, task, extra=extra), _model(3, family, task, extra=extra)
    _update_both(sb3, mine)
    before = _params(_model(3, family, task, extra=extra))
    for name, p in _params(sb3).items():
        assert not torch.equal(p, before[name]) or not p.requires_grad, name  # the update moved it
        torch.testing.assert_close(_params(mine)[name], p, atol=atol, rtol=0, msg=name)
    assert set(mine.logger.name_to_value) == set(sb3.logger.name_to_value)
    for key, value in sb3.logger.name_to_value.items():
        assert mine.logger.name_to_value[key] == pytest.approx(value, rel=1e-5, abs=log_atol), key


def _kickstart(seed: int, family: str, task: str, teacher_tasks: list[str]) -> KickstartPPO:
    base = _model(seed, family, task)
    teacher = _model(9, family, teacher_tasks).policy
    with torch.no_grad():  # a teacher that is not near uniform as a fresh policy is: a KL that is not zero
        for name, p in teacher.named_parameters():
            if name.startswith("heads.") and "log_std" not in name:
                p.mul_(100.0)
    return KickstartPPO(
        type(base.policy), base.env, policy_kwargs=base.policy_kwargs, teacher=teacher, teacher_head=1, beta=0.8,
        anneal=0.5, seed=seed, device="cpu", n_steps=32, batch_size=24, n_epochs=3, clip_range_vf=0.2,
    )  # fmt: skip


@pytest.mark.parametrize("family,task,teacher", [
    ("cartpole", "default", ["default", "long"]), ("pendulum", "default", ["default", "heavy"]),
    ("plane-md", "default", ["default", "slow"]), ("plane-mb", "default", ["default", "slow"]),
    ("plane-sees-d", "default", ["default", "slow"]),
])  # fmt: skip
def test_one_seed_kickstart_update_is_kickstart_ppos_to_1e6(family, task, teacher):
    """Kickstarting batched (K = 1): the same rollout and minibatch order give KickstartPPO's update (PPO's loss
    plus beta * KL(teacher || student), the teacher routed to its head for the target) to 1e-6, and its logs."""
    sb3, mine = _kickstart(3, family, task, teacher), _kickstart(3, family, task, teacher)
    _update_both(sb3, mine)
    assert sb3.logger.name_to_value["train/kickstart_kl"] > 0.01 and sb3.logger.name_to_value["train/kickstart_beta"] > 0  # fmt: skip
    for name, p in _params(sb3).items():
        torch.testing.assert_close(_params(mine)[name], p, atol=1e-6, rtol=0, msg=name)
    assert set(mine.logger.name_to_value) == set(sb3.logger.name_to_value)
    for key, value in sb3.logger.name_to_value.items():
        assert mine.logger.name_to_value[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert [t[:2] for t in mine.kickstart_log] == [t[:2] for t in sb3.kickstart_log]


class Steps(BaseCallback):
    """Records seed's rewards, and raises at a given step (a seed that fails)."""

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


def _batch(seeds, steps=256, fail=None, **model):
    models = [_model(s, **model) for s in seeds]
    callbacks = [Steps(fail_at=128 if s == fail else None) for s in seeds]
    batch = BatchedPPO(models).learn(steps, callbacks)
    return {s: (m, cb, batch) for s, m, cb in zip(seeds, models, callbacks)}


def test_a_seed_is_bit_identical_whatever_shares_its_batch():
    alone = _batch([1])[1]
    for seeds in ([0, 1, 2], [7, 6, 5, 4, 3, 2, 1, 0]):
        other = _batch(seeds)[1]
        assert other[1].rewards == alone[1].rewards
        for name, p in _params(alone[0]).items():
            assert torch.equal(_params(other[0])[name], p), (seeds, name)
    # and the seeds differ from one another (their own random streams)
    two = _batch([0, 1])
    assert not torch.equal(
        _params(two[0][0])["mlp_extractor.policy_net.0.weight"], _params(two[1][0])["mlp_extractor.policy_net.0.weight"]
    )


def test_a_cnn_seed_is_bit_identical_whatever_shares_its_batch():
    # A convolution runs through vmap, which computes two rows by another path than three or more: a seed
    # alone is padded to three rows, so that `rltransfer verify` (a batch of one) gives the grid's bits.
    cnn = {"family": "minigrid", "task": "empty-5", "extra": CNN}
    alone = _batch([1], steps=128, **cnn)[1]
    assert not alone[2].stack.folds and alone[2].rows == 3
    # the test's hyperparameters, not the MiniGrid family's (2,048 steps a rollout, 10 epochs: 90 s)
    assert alone[0].n_steps == HYPER["n_steps"] and alone[0]._n_updates == 2 * HYPER["n_epochs"]
    for seeds in ([0, 1], [0, 1, 2], [5, 4, 3, 2, 1, 0]):
        other = _batch(seeds, steps=128, **cnn)[1]
        assert other[1].rewards == alone[1].rewards
        for name, p in _params(alone[0]).items():
            assert torch.equal(_params(other[0])[name], p), (seeds, name)


def test_a_failing_seed_is_recorded_and_the_others_go_on_unchanged():
    alone = _batch([0])[0]
    runs = _batch([0, 1], fail=1)
    model, callback, batch = runs[1]
    assert list(batch.failed) == [1] and "this seed fails" in str(batch.failed[1].error)
    assert "RuntimeError" in batch.failed[1].traceback
    assert model.num_timesteps == 128
    assert runs[0][0].num_timesteps == 256
    for name, p in _params(alone[0]).items():
        assert torch.equal(_params(runs[0][0])[name], p), name
    # the failed seed's parameters stopped moving when it failed (the other seed trained on)
    for name, p in callback.at_failure.items():
        assert torch.equal(p, _params(model)[name]), name


class StopAt(BaseCallback):
    """Stops its seed once it has taken ``steps`` steps (as the Evaluator stops a run at its budget)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        return self.num_timesteps < self.steps


def test_seeds_whose_budget_ends_before_their_first_update_are_left_as_built():
    """A budget shorter than one rollout (the Evaluator stops the run during it): SB3's learn stops before it
    ever trains, and so does the batch, leaving each model's weights and optimizer as they were built."""
    models = [_model(s) for s in (0, 1)]
    before = [(_params(m), m.policy.optimizer.param_groups[0]["lr"]) for m in models]
    batch = BatchedPPO(models).learn(10_000, [StopAt(16), StopAt(32)])
    assert not batch.failed
    for m, (params, lr) in zip(models, before):
        assert m.policy.optimizer.param_groups[0]["lr"] == lr and not m.policy.optimizer.state
        for name, p in params.items():
            assert torch.equal(_params(m)[name], p), name


def test_each_seed_is_a_normal_sb3_model(tmp_path):
    runs = _batch([0, 1])
    for seed, (model, _, _) in runs.items():
        model.save(tmp_path / f"{seed}.zip")
        loaded = PPO.load(tmp_path / f"{seed}.zip", device="cpu")
        for name, p in _params(model).items():
            assert torch.equal(dict(loaded.policy.named_parameters())[name], p)
        state = loaded.policy.optimizer.state_dict()["state"]
        assert state and all(
            int(s["step"]) == 256 // 64 * 3 * 3 for s in state.values()
        )  # 4 updates x 3 epochs x 3 minibatches
    assert not torch.equal(_params(runs[0][0])["heads.action.weight"], _params(runs[1][0])["heads.action.weight"])


def test_the_policies_hold_their_own_parameters_again_after_a_batched_call():
    models = [_model(s) for s in (0, 1)]
    stack = StackedPolicies([m.policy for m in models])
    obs = {k: torch.zeros(2, 3, *v.shape) for k, v in models[0].policy.observation_space.spaces.items()}
    stack.call(lambda policy, o: policy.predict_values(o), obs)
    for m in models:
        for module in m.policy.modules():
            for p in module._parameters.values():
                assert p is None or isinstance(p, torch.nn.Parameter)
        # the aliases of the encoder still reach the seed's own weights
        assert m.policy.pi_features_extractor is m.policy.features_extractor


def _policies(kind: str) -> list:
    """Three seeds' policies of an architecture, every parameter random (no zero-initialised layer)."""
    if kind == "adapters":
        models = [_model(s) for s in (0, 1, 2)]
        for m in models:
            add_adapters(m.policy.features_extractor, rank=2)
            add_adapters(m.policy.mlp_extractor, rank=2)
    elif kind == "progressive":
        models = [PPO(ProgressivePolicy, _model(s).env, policy_kwargs=_model(s).policy_kwargs, seed=s, **{
            k: v for k, v in HYPER.items() if k not in ("learning_rate", "clip_range_vf")}) for s in (0, 1, 2)]  # fmt: skip
    else:
        family, task, extra = {
            "discrete": ("cartpole", "default", None),
            "box": ("pendulum", "default", None),
            "heads": ("cartpole", ["short", "long", "default"], None),
            "context": ("cartpole", ["short", "long"], {"conditioning": "context"}),
            "box heads": ("pendulum", ["default", "heavy"], None),
            "cnn": ("minigrid", "empty-5", CNN),
        }[kind]
        models = [_model(s, family, task, extra=extra) for s in (0, 1, 2)]
    for s, m in enumerate(models):
        gen = torch.Generator().manual_seed(s)
        with torch.no_grad():
            for p in m.policy.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return models


@pytest.mark.parametrize("kind", ["discrete", "box", "heads", "context", "box heads", "adapters", "progressive", "cnn"])
def test_a_batched_call_is_each_policys_own_forward_pass(kind):
    """Folded (every layer one batched product over the seeds) or by vmap (what folding does not know: a
    convolution), the batched call gives each seed what its own policy gives, samples of several tasks
    routed to their heads."""
    models = _policies(kind)
    stack = StackedPolicies([m.policy for m in models])
    assert stack.folds == (kind != "cnn")
    env = models[0].env
    obs = env.reset()
    for _ in range(3):  # past the first observations, the envs' tasks mixed
        obs = env.step(np.array([env.action_space.sample() for _ in range(env.num_envs)]))[0]
    tensors = {k: torch.as_tensor(v) for k, v in obs.items()}
    if kind in ("heads", "context", "box heads"):
        assert len({tuple(t) for t in obs["task"].tolist()}) > 1
    rows = {k: torch.stack([v + 0.1 * i for i in range(3)]) for k, v in tensors.items() if k != "task"}
    rows |= {k: torch.stack([v] * 3) for k, v in tensors.items() if k == "task"}
    with torch.no_grad():
        params, values = stack.call(batched_ppo._net, rows)
        just_values = stack.call(batched_ppo._values, rows)
    for k, m in enumerate(models):
        with torch.no_grad():
            own_params, own_values = m.policy.action_params_and_value({n: v[k] for n, v in rows.items()})
        for batched, own in zip(params, own_params):
            torch.testing.assert_close(batched[k], own.expand_as(batched[k]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(values[k], own_values, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(just_values[k], own_values, rtol=1e-5, atol=1e-6)


def test_what_cannot_batch_says_why():
    assert "target_kl" in unbatchable(_model(0, target_kl=0.01))
    base = _model(0)
    kick = KickstartPPO(type(base.policy), base.env, policy_kwargs=base.policy_kwargs, teacher=copy.deepcopy(base.policy), seed=0, device="cpu", n_steps=32, batch_size=24)  # fmt: skip
    assert unbatchable(kick) is None  # kickstarting is batched
    kick.teacher = torch.nn.Linear(2, 2)
    assert "teacher" in unbatchable(kick)
    with pytest.raises(ValueError, match="differ in n_epochs"):
        BatchedPPO([_model(0), _model(1, n_epochs=2)])


def test_the_batched_adam_is_torchs_adam_on_every_row():
    """StackedAdam restates torch's Adam with a learning rate per row: each row equals torch.optim.Adam run
    alone at that row's rate (a guard of the copy: it fails when torch's Adam changes)."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(3, 5, 4, generator=gen)
    grads = [torch.randn(3, 5, 4, generator=gen) for _ in range(50)]
    lrs = torch.tensor([1e-3, 3e-4, 2e-2], dtype=torch.float64)
    stacked = start.clone().requires_grad_(True)
    opt = StackedAdam([{"params": [stacked], "betas": (0.9, 0.999), "eps": 1e-5, "weight_decay": 0.01, "lr_mult": 0.5}])
    for g in grads:
        stacked.grad = g.clone()
        opt.step(lrs)
    for k in range(3):
        row = start[k].clone().requires_grad_(True)
        ref = torch.optim.Adam([row], lr=float(lrs[k]) * 0.5, eps=1e-5, weight_decay=0.01)
        for g in grads:
            row.grad = g[k].clone()
            ref.step()
        torch.testing.assert_close(stacked.detach()[k], row.detach(), atol=1e-7, rtol=1e-6)
    with pytest.raises(ValueError, match="amsgrad"):
        StackedAdam([{"params": [stacked], "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": True}])


def test_seeds_that_start_at_different_steps_follow_their_own_schedules():
    """A seed whose first steps went elsewhere (a probe of source heads) learns the rest of its budget, at its
    own point of the learning-rate schedule: the same as alone."""
    models = [_model(0), _model(1)]
    models[1].num_timesteps = 64
    BatchedPPO(models).learn([256, 192], reset_num_timesteps=[True, False])
    alone = _model(1)
    alone.num_timesteps = 64
    BatchedPPO([alone]).learn(192, reset_num_timesteps=False)
    assert models[1].num_timesteps == alone.num_timesteps == 256 and models[0].num_timesteps == 256
    for name, p in _params(alone).items():
        assert torch.equal(_params(models[1])[name], p), name
    assert (models[0]._n_updates, models[1]._n_updates) == (4 * 3, 3 * 3)  # iterations x epochs


@pytest.mark.parametrize("family", ["cartpole", "pendulum"])
def test_batched_predict_gives_each_models_deterministic_actions(family):
    models = [_model(s, family) for s in (0, 1, 2)]
    batch = BatchedPPO(models)
    obs = {k: m.env.reset() for k, m in enumerate(models)}
    for m, o in zip(models, obs.values()):
        m.env.step(m.predict(o, deterministic=True)[0])  # other observations per seed
    obs = {k: m.env.step(m.predict(obs[k], deterministic=True)[0])[0] for k, m in enumerate(models)}
    got = batch.predict({0: obs[0], 2: obs[2]})
    assert sorted(got) == [0, 2]
    for k in (0, 2):
        np.testing.assert_allclose(got[k], models[k].predict(obs[k], deterministic=True)[0], atol=1e-5)


@pytest.mark.parametrize("family", ["cartpole", "pendulum"])
def test_the_rollout_stores_each_policys_values_and_log_probabilities_of_its_actions(family):
    """What the batched rollout stores for each seed is what its own SB3 policy gives for the same
    observations and actions (Discrete and Box)."""
    models = [_model(s, family) for s in (0, 1)]
    batch = BatchedPPO(models)
    cbs = [m._setup_learn(64, None)[1] for m in models]
    assert batch._collect_rollouts(cbs, [0, 1]) == [0, 1]
    for m in models:
        buf = m.rollout_buffer
        obs = {k: torch.as_tensor(v).flatten(0, 1) for k, v in buf.observations.items()}
        actions = torch.as_tensor(buf.actions).flatten(0, 1)
        if family == "cartpole":
            actions = actions.long().flatten()
        with torch.no_grad():
            values, log_prob, _ = m.policy.evaluate_actions(obs, actions)
        np.testing.assert_allclose(buf.values.flatten(), values.flatten().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(buf.log_probs.flatten(), log_prob.numpy(), rtol=1e-5, atol=1e-5)


class Locals(BaseCallback):
    """Records the type and shape of every local a callback is given at its first step."""

    def _on_step(self) -> bool:
        if not hasattr(self, "seen"):
            self.seen = {k: (type(v).__name__, tuple(getattr(v, "shape", ()))) for k, v in self.locals.items()}
        return True


@pytest.mark.parametrize("family", ["cartpole", "pendulum"])
def test_a_callback_sees_the_locals_sb3s_rollout_gives_it(family):
    """A callback's ``locals`` in a batched rollout: every name the engine passes is one SB3's
    ``collect_rollouts`` passes, of the same type and shape (a callback written for SB3 reads them alike)."""
    batched, alone = Locals(), Locals()
    BatchedPPO([_model(0, family)]).learn(64, [batched])
    _model(0, family).learn(64, alone)
    assert batched.seen.keys() <= alone.seen.keys()
    assert {k: alone.seen[k] for k in batched.seen} == batched.seen
