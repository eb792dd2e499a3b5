import gymnasium as gym
import numpy as np
import pytest

from rltransfer.envs import Family, MultiTaskVecEnv, Parameter, TaskError, get_family


def _cartpole_tasks(names=("short", "default", "long")):
    fam = get_family("cartpole")
    return fam, [fam.task(n) for n in names]


def test_slots_are_balanced_and_info_carries_the_task():
    fam, tasks = _cartpole_tasks()
    env = MultiTaskVecEnv(fam, tasks, "context", envs_per_task=3)
    assert env.num_envs == 9
    counts = np.bincount(env.slot_tasks, minlength=3)
    assert counts.tolist() == [3, 3, 3]
    obs = env.reset()
    np.testing.assert_array_equal(obs["task"], np.eye(3)[env.slot_tasks])
    _, _, _, infos = env.step(np.ones(9, dtype=np.int64))
    for slot, info in enumerate(infos):
        assert info["task_id"] == env.slot_tasks[slot]
        assert info["task"] == tasks[env.slot_tasks[slot]].name


@pytest.mark.parametrize("conditioning", ["none", "onehot", "context"])
def test_conditioning_contents(conditioning):
    fam, tasks = _cartpole_tasks()
    env = MultiTaskVecEnv(fam, tasks, conditioning, envs_per_task=2)
    obs = env.reset()
    if conditioning == "none":
        assert "context" not in obs
        return
    for slot, t in enumerate(env.slot_tasks):
        if conditioning == "onehot":
            np.testing.assert_array_equal(obs["context"][slot], np.eye(3, dtype=np.float32)[t])
        else:
            np.testing.assert_allclose(obs["context"][slot], fam.context(tasks[t]))
    # The conditioning is constant through an episode and after auto-reset (pushing left ends CartPole
    # episodes within 40 steps, so every slot resets at least once here).
    context, resets = obs["context"].copy(), np.zeros(6, dtype=int)
    for _ in range(40):
        obs, _, dones, _ = env.step(np.zeros(6, dtype=np.int64))
        resets += dones
        np.testing.assert_array_equal(obs["context"], context)
        np.testing.assert_array_equal(obs["task"].argmax(1), env.slot_tasks)
    assert resets.min() >= 1


def test_terminal_observations_have_the_conditioned_layout():
    fam, tasks = _cartpole_tasks(("short", "long"))
    env = MultiTaskVecEnv(fam, tasks, "context", envs_per_task=1)
    env.reset()
    for _ in range(100):
        _, _, dones, infos = env.step(np.zeros(2, dtype=np.int64))
        for slot in np.flatnonzero(dones):
            term = infos[slot]["terminal_observation"]
            assert env.observation_space.contains(
                {"obs": term["obs"], "context": term["context"], "task": term["task"]}
            )
            assert term["task"].argmax() == env.slot_tasks[slot]
            np.testing.assert_allclose(term["context"], fam.context(tasks[slot]))
            return
    raise AssertionError("no episode ended")


def test_episode_statistics_are_kept_per_task():
    fam, tasks = _cartpole_tasks(("short", "long"))
    env = MultiTaskVecEnv(fam, tasks, "none", envs_per_task=2)
    env.seed(0)
    env.reset()
    for _ in range(200):
        env.step(np.zeros(4, dtype=np.int64))
    for name in ("short", "long"):
        assert len(env.episode_returns[name]) >= 2
        # CartPole pays 1 per step: returns equal lengths, and belong to that task only.
        assert list(env.episode_returns[name]) == [float(x) for x in env.episode_lengths[name]]


def test_tasks_whose_spaces_cannot_share_a_layout_fail_early_naming_them():
    # Observation lengths and Discrete action counts may differ (tests/test_mixed_spaces.py);
    # Discrete and Box actions cannot share one head layout.
    def build(p):
        return gym.make("CartPole-v1") if p["kind"] < 0.5 else gym.make("Pendulum-v1")

    fam = Family(
        name="mixed",
        parameters=[Parameter("kind", 0.0, 0.0, 1.0)],
        build=build,
        tasks={"cart": {"kind": 0.0}, "pend": {"kind": 1.0}},
        source=["cart", "pend"],
        targets=[],
    )
    with pytest.raises(TaskError, match=r"tasks 'cart' and 'pend' have action spaces Discrete\(2\) and Box"):
        MultiTaskVecEnv(fam, [fam.task("cart"), fam.task("pend")], "none")


def test_non_finite_observations_or_rewards_name_the_task():
    class Broken(gym.Wrapper):
        def step(self, action):
            obs, r, term, trunc, info = self.env.step(action)
            return obs, float("nan"), term, trunc, info

    def build(p):
        env = gym.make("CartPole-v1")
        return Broken(env) if p["broken"] > 0.5 else env

    fam = Family(
        name="nan-test", parameters=[Parameter("broken", 0.0, 0.0, 1.0)], build=build,
        tasks={"ok": {}, "bad": {"broken": 1.0}}, source=["ok", "bad"], targets=[],
    )  # fmt: skip
    env = MultiTaskVecEnv(fam, [fam.task("ok"), fam.task("bad")], "none")
    env.reset()
    with pytest.raises(TaskError, match="task 'bad' returned a non-finite reward"):
        env.step(np.zeros(2, dtype=np.int64))


class _Counted(gym.Wrapper):
    steps = 0  # every step of every instance: what an evaluation costs

    def step(self, action):
        _Counted.steps += 1
        return self.env.step(action)


def _counted_cartpole(p):
    env = gym.make("CartPole-v1")
    env.unwrapped.length, env.unwrapped.polemass_length = p["length"], env.unwrapped.masspole * p["length"]
    return _Counted(env)


@pytest.mark.parametrize("episodes", [8, 12])  # one full wave; a second wave of 4 in 8 envs
def test_an_evaluation_steps_no_env_whose_episode_has_ended(monkeypatch, episodes):
    from rltransfer.evaluation import run_episodes

    fam = Family(
        name="counted", parameters=[Parameter("length", 0.5, 0.2, 2.0)], build=_counted_cartpole,
        tasks={"a": {}, "b": {"length": 1.2}}, source=["a"], targets=["b"],
    )  # fmt: skip

    def evaluate(pause: bool):
        monkeypatch.setattr(MultiTaskVecEnv, "can_pause", property(lambda self: pause))
        env = MultiTaskVecEnv(fam, [fam.task("b")], "context", envs_per_task=8)
        rng = np.random.default_rng(0)

        def act(obs):  # a draw for every env at every step, as a sampling policy's: episodes of many lengths
            return (obs["obs"][:, 2] + 0.1 * rng.standard_normal(env.num_envs) > 0).astype(np.int64)

        _Counted.steps = 0
        returns = run_episodes(env, act, episodes, base_seed=7)
        env.close()
        return returns, _Counted.steps

    (paused, stepped), (stepped_on, every_step) = evaluate(True), evaluate(False)
    np.testing.assert_array_equal(paused, stepped_on)  # the same episodes, bit for bit
    assert len(paused) == episodes and len(set(paused.tolist())) > 1
    assert stepped == paused.sum()  # a CartPole step earns 1: each env stepped exactly through its episode
    assert every_step > stepped
