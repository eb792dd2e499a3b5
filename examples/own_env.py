"""Your own Gymnasium environment as an rltransfer family, end to end.

A block on a rail, pushed toward the origin: its mass and the rail's friction make the tasks. The script
defines the env class, registers a family over it, and runs the whole study from Python: a PPO agent
pre-trained on two tasks, then `scratch` and `finetune` compared on a heavier block over 5 seeds each.

    python examples/own_env.py            # about a minute on 2 cores; the report under runs/slider/
    python examples/own_env.py --quick    # a few seconds: tiny budgets, to see that it runs

The family is registered at the top level of the script, not under ``if __name__ == "__main__":``: the
grid's worker processes re-import the script, and they must know the family too.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from gymnasium import spaces

import rltransfer
from rltransfer.envs import Family, Parameter, register_family


class Slider(gym.Env):
    """A block at x on a rail, at speed v; each step pushes it left, not at all, or right. The reward is minus its
    distance from the origin; an episode lasts 100 steps (a TimeLimit, added where the family builds it)."""

    def __init__(self, mass: float = 1.0, friction: float = 0.5):
        self.mass, self.friction, self.dt = mass, friction, 0.05
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)  # seeds self.np_random: the same seed, the same episode
        self.x, self.v = float(self.np_random.uniform(-1.5, 1.5)), 0.0
        return np.array([self.x, self.v], np.float32), {}

    def step(self, action):
        force = float(action) - 1.0
        self.v += self.dt * (force - self.friction * self.v) / self.mass
        self.x += self.dt * self.v
        return np.array([self.x, self.v], np.float32), -abs(self.x), False, False, {}


def build(params) -> gym.Env:
    """One task's env: every parameter applied to this instance only."""
    return gym.wrappers.TimeLimit(Slider(params["mass"], params["friction"]), max_episode_steps=100)


register_family(
    Family(
        name="slider",
        parameters=[Parameter("mass", 1.0, 0.5, 4.0), Parameter("friction", 0.5, 0.0, 2.0)],
        build=build,
        tasks={"light": {"mass": 0.7}, "sticky": {"friction": 1.5}, "heavy": {"mass": 2.5}},
        source=["light", "sticky"],
        targets={"heavy": "extrapolation"},
        reward_threshold=-40.0,
        description="a block on a rail pushed to the origin (examples/own_env.py)",
    ),
    overwrite=True,
)

CONFIG = {
    "name": "slider",
    "family": "slider",
    "agent": {
        "algo": "ppo",
        "hyperparams": {
            "n_steps": 32,
            "batch_size": 256,
            "n_epochs": 20,
            "gamma": 0.98,
            "gae_lambda": 0.8,
            "learning_rate": 0.001,
        },
    },  # fmt: skip
    "pretrain": {"timesteps": 60_000, "envs_per_task": 4},
    "transfer": {"timesteps": 30_000, "n_envs": 8, "seeds": 5, "strategies": ["scratch", "finetune"]},
    "evaluation": {"every": 2_000, "episodes": 10},
}
QUICK = [
    "pretrain.timesteps=2048",
    "transfer.timesteps=2048",
    "transfer.seeds=2",
    "evaluation.every=1024",
    "name=slider-quick",
]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a few seconds")
    parser.add_argument("--output-dir", default="runs", help="where the experiment's directory goes (default runs)")
    args = parser.parse_args()
    overrides = [f"output_dir={args.output_dir}", *(QUICK if args.quick else [])]
    result = rltransfer.run_experiment(CONFIG, overrides)
