"""Every family is a Gymnasium id: ``gym.make("rltransfer/<family>-v0", task=...)`` makes the env that
``Family.make`` builds, and SB3's ``make_vec_env`` and a model given the id take it as any registered env."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rltransfer.envs import (
    Family,
    Parameter,
    TaskError,
    get_family,
    gym_id,
    list_families,
    register_declared,
    register_family,
)


def _rollout(env: gym.Env, seed: int, steps: int = 60) -> list[tuple]:
    """Observations, rewards and ends of ``steps`` steps with actions drawn from a seeded action space."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [(np.asarray(obs).tobytes(),)]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        out.append((np.asarray(obs).tobytes(), float(reward), terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((np.asarray(obs).tobytes(),))
    return out


def test_importing_the_envs_registers_every_shipped_family_and_loads_no_torch():
    script = (
        "import sys, gymnasium as gym, rltransfer.envs\n"
        "print(sorted(i for i in gym.registry if i.startswith('rltransfer/')), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    shipped = ["acrobot", "cartpole", "classic", "lunarlander", "lunarlander-continuous", "minigrid", "mountaincar",
               "pendulum"]  # fmt: skip
    assert out.stdout.strip() == f"{sorted(gym_id(f) for f in shipped)} False"
    assert set(shipped) <= set(list_families())


@pytest.mark.parametrize(
    "family, task",
    [("cartpole", "very-long-heavy"), ("acrobot", "heavy-long"), ("pendulum", "heavy-long"), ("mountaincar", "mid"),
     ("lunarlander", "moon"), ("minigrid", "doorkey-6"), ("classic", "acrobot-long")],
)  # fmt: skip
def test_the_id_makes_the_familys_env_of_the_task(family, task):
    fam = get_family(family)
    env = gym.make(gym_id(family), task=task)
    assert env.spec.id == gym_id(family) and env.spec.kwargs == {"family": family, "task": task}
    assert env.observation_space == fam.make(task).observation_space
    assert _rollout(env, seed=3) == _rollout(fam.make(task), seed=3)
    assert _rollout(gym.make(env.spec.id, **env.spec.kwargs), seed=3) == _rollout(fam.make(task), seed=3)
    assert _rollout(gym.make(env.spec), seed=4) == _rollout(fam.make(task), seed=4)  # its wrappers twice: no matter


def test_parameters_and_errors():
    fam = get_family("cartpole")
    assert gym.make(gym_id("cartpole"), length=1.5).unwrapped.length == 1.5
    assert gym.make(gym_id("cartpole"), task={"length": 1.5, "gravity": 13.0}).unwrapped.gravity == 13.0
    default = gym.make(gym_id("cartpole")).unwrapped  # neither: the family's defaults
    assert (default.length, default.gravity) == (fam.parameters["length"].default, fam.parameters["gravity"].default)
    with pytest.raises(TaskError, match=r"rltransfer/cartpole-v0: unknown task 'mediun' .*did you mean 'medium'"):
        gym.make(gym_id("cartpole"), task="mediun")
    with pytest.raises(TaskError, match=r"unknown parameter 'lenght' .*did you mean 'length'"):
        gym.make(gym_id("cartpole"), lenght=1.0)
    with pytest.raises(TaskError, match=r"parameter 'length'=100.0 is out of range \[0.1, 3.0\]"):
        gym.make(gym_id("cartpole"), length=100.0)
    with pytest.raises(TaskError, match=r"give a task \(task=...\) or parameters \(length\), not both"):
        gym.make(gym_id("cartpole"), task="medium", length=1.0)
    # render_mode as the env's constructor takes it; one the env does not have, as gym.make answers it for a class
    env = gym.make(gym_id("cartpole"), task="medium", render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (400, 600, 3)
    with pytest.raises(TypeError, match="render_mode 'ascii' is not one of the env's"):
        gym.make(gym_id("cartpole"), render_mode="ascii")


def test_sb3_takes_the_id_as_any_registered_env():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    # Gymnasium's module:id form imports the module first (a process that has not: SubprocVecEnv's workers)
    assert gym.make("rltransfer.envs:rltransfer/cartpole-v0", task="medium").unwrapped.length == 0.6
    vec = make_vec_env(gym_id("cartpole"), n_envs=2, seed=0, env_kwargs={"task": "very-long-heavy"})
    assert [e.unwrapped.length for e in vec.envs] == [
        get_family("cartpole").task("very-long-heavy").params["length"]
    ] * 2
    model = PPO("MlpPolicy", vec, n_steps=32, batch_size=64, device="cpu").learn(64)
    assert model.num_timesteps == 64


def test_a_family_of_ones_own_gets_its_id_when_registered():
    def build(params):
        env = gym.make("CartPole-v1")
        env.unwrapped.gravity = params["gravity"]
        return env

    tasks = {"default": {}, "far": {"gravity": 15.0}}
    register_family(Family("gym-id-gravity", [Parameter("gravity", 9.8, 2.0, 20.0)], build, tasks, ["default"],
                           {"far": "extrapolation"}), overwrite=True)  # fmt: skip
    assert gym.make("rltransfer/gym-id-gravity-v0", task="far").unwrapped.gravity == 15.0
    from rltransfer.config import family_spec
    from rltransfer.config_yaml import read_yaml

    declaration = Path(__file__).parents[1] / "configs" / "families" / "cartpole-declared.yaml"
    spec = {**read_yaml(declaration), "name": "gym-id-declared"}
    declared = register_declared(family_spec(spec, "cartpole-declared.yaml").model_dump())
    assert declared.name == "gym-id-declared"
    assert gym.make("rltransfer/gym-id-declared-v0", task="very-long-heavy").unwrapped.gravity == 16.0
    # A name no Gymnasium id can hold: the family is registered, without an id.
    register_family(Family("gym id spaced", [Parameter("gravity", 9.8, 2.0, 20.0)], build, tasks, ["default"],
                           {"far": "extrapolation"}), overwrite=True)  # fmt: skip
    assert "gym id spaced" in list_families() and not any("spaced" in i for i in gym.registry)


@pytest.mark.parametrize(
    "family, task", [("cartpole", "very-long-heavy"), ("acrobot", "heavy-long"), ("pendulum", "heavy-long"),
                     ("mountaincar", "mid")],
)  # fmt: skip
def test_make_vec_steps_the_vector_build_as_sync_vector_env_steps_the_envs(family, task):
    """``gym.make_vec`` of a family with a vector build steps it as arrays, with SyncVectorEnv's results over the
    family's envs bit for bit: observations, rewards, ends and dtypes, through episode ends (next-step autoreset)."""
    from rltransfer.envs.gym_vector import FamilyVectorEnv

    fast = gym.make_vec(gym_id(family), num_envs=4, task=task)
    sync = gym.make_vec(gym_id(family), num_envs=4, task=task, vectorization_mode="sync")
    assert isinstance(fast.unwrapped, FamilyVectorEnv) and isinstance(sync.unwrapped, gym.vector.SyncVectorEnv)
    assert (fast.single_observation_space, fast.action_space) == (sync.single_observation_space, sync.action_space)
    for a, b in [
        (fast.reset(seed=5), sync.reset(seed=5)),
        (fast.reset(seed=[1, 2, 3, 4]), sync.reset(seed=[1, 2, 3, 4])),
    ]:
        assert np.array_equal(a[0], b[0]) and a[0].dtype == b[0].dtype and a[1] == b[1] == {}
    fast.action_space.seed(0)
    ends = 0
    for _ in range(700):
        action = fast.action_space.sample()
        got, expected = fast.step(action), sync.step(action)
        for x, y in zip(got[:4], expected[:4]):
            assert np.array_equal(x, y) and x.dtype == y.dtype
        assert got[4] == expected[4] == {}
        ends += int((got[2] | got[3]).sum())
    assert ends >= 4  # episodes ended (terminated or truncated) and the next step reset them, as Sync's


def test_make_vec_of_a_family_without_a_vector_build_is_gymnasiums_own():
    vec = gym.make_vec(gym_id("lunarlander"), num_envs=2, task="moon")
    assert isinstance(vec.unwrapped, gym.vector.SyncVectorEnv)
    assert [e.unwrapped.world.gravity[1] for e in vec.unwrapped.envs] == [get_family("lunarlander").make("moon").unwrapped.world.gravity[1]] * 2  # fmt: skip
    rendered = gym.make_vec(gym_id("cartpole"), num_envs=2, task="medium", render_mode="rgb_array")
    assert isinstance(rendered.unwrapped, gym.vector.SyncVectorEnv)  # rendering: the envs themselves
    with pytest.raises(TaskError, match=r"give a task \(task=...\) or parameters \(length\), not both"):
        gym.make_vec(gym_id("cartpole"), num_envs=2, task="medium", length=1.0)
    with pytest.raises(ValueError, match="3 seeds for 2 envs"):
        gym.make_vec(gym_id("cartpole"), num_envs=2).reset(seed=[1, 2, 3])
