"""A family's vector build steps its envs as arrays with the results of its own envs stepped one by one:
the same observations, rewards, ends, resets and infos, bit for bit, for the same parameters, seeds and
actions (rltransfer.envs.vector)."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

from rltransfer.envs import MultiTaskVecEnv, get_family
from rltransfer.envs.multitask import StepTogether


def _envs(family: str, tasks: list[str], n: int):
    fam = get_family(family)
    resolved = [fam.task(t) for t in tasks]
    vector = MultiTaskVecEnv(fam, resolved, "context", envs_per_task=n)
    single = MultiTaskVecEnv(fam, resolved, "context", envs_per_task=n)
    single._vector = None  # stepped one by one, as DummyVecEnv over the family's Gymnasium envs
    assert vector._vector is not None
    return vector, single


def _balance(obs: dict, rng: np.random.Generator) -> np.ndarray:
    """A controller that keeps most poles up to the time limit, with random pushes: long and short episodes."""
    o = obs["obs"]
    act = (o[:, 2] + 0.5 * o[:, 3] > 0).astype(np.int64)
    flip = rng.random(len(act)) < 0.1
    return np.where(flip, 1 - act, act)


def _swing(obs: dict, rng: np.random.Generator) -> np.ndarray:
    """Torques beyond the bounds too (the env clips them)."""
    return rng.uniform(-3.0, 3.0, (len(obs["obs"]), 1)).astype(np.float32)


def _climb(obs: dict, rng: np.random.Generator) -> np.ndarray:
    """Push along the velocity (reaches the goal), with random actions: episodes that end and that time out."""
    act = np.where(obs["obs"][:, 1] > 0, 2, 0)
    return np.where(rng.random(len(act)) < 0.3, rng.integers(0, 3, len(act)), act)


def _pump(obs: dict, rng: np.random.Generator) -> np.ndarray:
    """Torque along the second joint's swing, with random actions: swings up, and times out, now and then."""
    act = np.where(obs["obs"][:, 5] > 0, 2, 0)
    return np.where(rng.random(len(act)) < 0.2, rng.integers(0, 3, len(act)), act)


CASES = [
    ("acrobot", ["default", "short-links", "heavy-long"], _pump, True),
    ("cartpole", ["very-long-heavy"], _balance, True),
    ("cartpole", ["short", "weak-push", "heavy-gravity"], _balance, True),
    ("pendulum", ["default", "heavy-long"], _swing, False),
    ("mountaincar", ["mid", "weak-steep", "strong"], _climb, True),
]


def _same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), (a, b)
    else:
        assert a == b, (a, b)


@pytest.mark.parametrize("family,tasks,act,terminates", CASES)
def test_a_vector_build_gives_the_single_envs_trajectories(family, tasks, act, terminates):
    vector, single = _envs(family, tasks, 3)
    rng = np.random.default_rng(0)
    truncated = ended = 0
    for episode_seed in (7, 123):  # seeded resets, then resets on their own streams
        for env in (vector, single):
            env.seed(episode_seed)
        o_v = vector.reset()
        _same(o_v, single.reset())
        for _ in range(1500):
            actions = act(o_v, rng)
            o_v, r_v, d_v, i_v = vector.step(actions)
            o_s, r_s, d_s, i_s = single.step(actions)
            _same(o_v, o_s)
            _same(r_v, r_s)
            _same(d_v, d_s)
            for a, b in zip(i_v, i_s):
                a, b = dict(a), dict(b)
                ea, eb = a.pop("episode", None), b.pop("episode", None)
                assert (ea is None) == (eb is None)
                if ea is not None:
                    assert (ea["r"], ea["l"]) == (eb["r"], eb["l"])
                    ended += 1
                    truncated += a["TimeLimit.truncated"]
                _same(a, b)
    assert ended > 10 and truncated >= 1  # episodes ended, and timed out
    assert (ended > truncated) == terminates  # ... and ended on their own, where the task can
    assert vector.episode_returns.keys() == single.episode_returns.keys()
    for name in vector.episode_returns:
        assert list(vector.episode_returns[name]) == list(single.episode_returns[name])


def _infos_same(x: list[dict], y: list[dict]) -> None:
    for a, b in zip(x, y, strict=True):
        a, b = dict(a), dict(b)
        ea, eb = a.pop("episode", None), b.pop("episode", None)
        assert (ea is None) == (eb is None)
        if ea is not None:
            assert (ea["r"], ea["l"]) == (eb["r"], eb["l"])
        _same(a, b)


def _normalized(env: MultiTaskVecEnv) -> VecNormalize:
    """``env`` in the VecNormalize of a run with ``agent.normalize`` (rltransfer.normalization)."""
    return VecNormalize(env, norm_obs=True, norm_reward=True, norm_obs_keys=["obs"], clip_obs=10.0)


@pytest.mark.parametrize("outcomes_only", [False, True], ids=["whole", "outcomes"])
@pytest.mark.parametrize("wrap", [None, _normalized], ids=["bare", "VecNormalize"])
@pytest.mark.parametrize("family,tasks,act,terminates", CASES)
def test_vector_builds_stepped_together_step_as_each_alone(family, tasks, act, terminates, wrap, outcomes_only):
    """Several seeds' envs (each its own tasks and reset seeds), their physics stepped as one
    (StepTogether): each env's observations, rewards, ends and infos are the bits of its own steps; a
    subset steps as well (a seed that stopped is left out). Seen through a VecNormalize (Acrobot's and
    MountainCar's runs normalise observations and rewards), each env's statistics too. With
    ``outcomes_only`` (an evaluation's), the bare envs' steps are finished in one call for all: the same
    observations, rewards and ends, no infos."""
    fam = get_family(family)
    groups = [tasks, tasks[::-1], tasks[:1]]
    wrap = wrap or (lambda env: env)
    together = [wrap(MultiTaskVecEnv(fam, [fam.task(t) for t in g], "context", envs_per_task=2)) for g in groups]
    alone = [wrap(MultiTaskVecEnv(fam, [fam.task(t) for t in g], "context", envs_per_task=2)) for g in groups]
    step = StepTogether(together, outcomes_only=outcomes_only)
    finished = outcomes_only and not isinstance(together[0], VecNormalize)
    assert step._finished == [finished] * 3  # a VecNormalize finishes its own steps: stepped as usual
    rng = np.random.default_rng(1)
    obs = []
    for i, (a, b) in enumerate(zip(together, alone)):
        a.seed(10 * i)
        b.seed(10 * i)
        obs.append(a.reset())
        _same(obs[-1], b.reset())
    ended = 0
    for t in range(1200):
        which = [0, 1, 2] if t < 900 else [0, 2]
        actions = [act(obs[i], rng) for i in which]
        for i, a, result in zip(which, actions, step(which, actions)):
            o, r, d, info = result
            o_b, r_b, d_b, info_b = alone[i].step(a)
            _same(o, o_b)
            _same(r, r_b)
            _same(d, d_b)
            _infos_same(info, [{} for _ in info_b] if finished else info_b)
            ended += int(d.sum())
            obs[i] = o
    assert ended > 5
    assert len(step._joints) == 2  # both sets of seeds stepped their physics as one
    for a, b in zip(together, alone):
        if isinstance(a, VecNormalize):
            _same(a.obs_rms["obs"].mean, b.obs_rms["obs"].mean)
            _same(a.ret_rms.var, b.ret_rms.var)


def test_an_env_that_raises_in_a_joint_step_fails_alone():
    """One seed's env raising (a non-finite observation, say) is that seed's error: the answer holds the
    exception in its place, and the other envs are stepped as alone."""
    fam = get_family("cartpole")
    envs = [MultiTaskVecEnv(fam, [fam.task("default")], "none", envs_per_task=2) for _ in range(3)]
    alone = [MultiTaskVecEnv(fam, [fam.task("default")], "none", envs_per_task=2) for _ in range(3)]
    for i, (a, b) in enumerate(zip(envs, alone)):
        a.seed(i)
        b.seed(i)
        a.reset()
        b.reset()

    def broken(rewards):
        raise RuntimeError("sub-env 1 returned a non-finite observation")

    envs[1]._check_finite = broken
    actions = [np.array([1, 0]), np.array([0, 1]), np.array([1, 1])]
    results = StepTogether(envs)([0, 1, 2], actions)
    assert isinstance(results[1], RuntimeError)
    for i in (0, 2):
        _same(results[i][0], alone[i].step(actions[i])[0])
    assert envs[1]._physics is None  # the failed step's physics is not taken for its next one


def test_a_non_finite_observation_in_steps_finished_together_is_that_envs_error():
    """Steps finished in one call (``outcomes_only``): an env whose state turned non-finite gets the error
    its own step raises, naming its task and sub-env, and the others' steps are as alone."""
    from rltransfer.envs.family import TaskError

    fam = get_family("cartpole")
    envs = [MultiTaskVecEnv(fam, [fam.task("default")], "none", envs_per_task=2) for _ in range(3)]
    alone = [MultiTaskVecEnv(fam, [fam.task("default")], "none", envs_per_task=2) for _ in range(3)]
    for i, (a, b) in enumerate(zip(envs, alone)):
        for env in (a, b):
            env.seed(i)
            env.reset()
    for env in (envs[1], alone[1]):
        env._vector.state[1] = np.nan
    actions = [np.array([1, 0]), np.array([0, 1]), np.array([1, 1])]
    results = StepTogether(envs, outcomes_only=True)([0, 1, 2], actions)
    with pytest.raises(TaskError) as own:
        alone[1].step(actions[1])
    assert isinstance(results[1], TaskError) and str(results[1]) == str(own.value)
    assert "task 'default' returned a non-finite observation (sub-env 1)" in str(results[1])
    for i in (0, 2):
        o, r, d, _ = alone[i].step(actions[i])
        _same(results[i][0], o)
        _same(results[i][1], r)
        _same(results[i][2], d)
