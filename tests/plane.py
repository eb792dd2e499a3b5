"""A family of one's own in the action and observation spaces SB3's policies take beside Box ones: acting in a
MultiDiscrete or a MultiBinary space or in a Box of 2-d actions (the tests of multi-actions, per process and
batched), or observing
a Discrete, MultiDiscrete or MultiBinary one (the tests of discrete observations)."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rltransfer.envs import Family, Parameter, register_family

POSITION = spaces.Box(-10, 10, (2,), np.float32)
MOVES = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.float64)
"""A Discrete(5) action's push: none, left, right, down, up."""

KINDS = {
    "plane-md": spaces.MultiDiscrete([3, 3]),
    "plane-mb": spaces.MultiBinary(4),
    "plane-box-2d": spaces.Box(-1, 1, (1, 2), np.float32),
}
"""The families acting in a multi-action space or in a Box of 2-d actions (each observes its position, a Box), by
their action space."""

SEEN = {
    "plane-sees-d": (spaces.Discrete(25), spaces.Discrete(5)),
    "plane-sees-md": (spaces.MultiDiscrete([5, 5]), spaces.Discrete(5)),
    "plane-sees-mb": (spaces.MultiBinary(10), spaces.Box(-1, 1, (2,), np.float32)),
}
"""The families observing the cell they are in, by their observation and action spaces: its index (Discrete),
its column and row (MultiDiscrete), or the one-hot of each (MultiBinary)."""


class Plane(gym.Env):
    """A point on a plane pushed along both axes at once, rewarded for staying near the origin. MultiDiscrete
    ``[3, 3]``: each axis's push left, none or right; MultiBinary ``4``: left, right, down, up, each pressed or
    not; Discrete ``5``: one of :data:`MOVES`; Box ``2`` (or ``(1, 2)``): each axis's push. It observes its
    position, or the cell of a 5 x 5 grid of unit cells around the origin that it is in (the edge cells reach out
    to the walls)."""

    def __init__(
        self,
        gain: float = 1.0,
        action_space: spaces.Space = KINDS["plane-md"],
        observation_space: spaces.Space = POSITION,
    ):
        self.gain = gain
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-2, 2, 2)
        return self._observe(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)), action
        a = np.asarray(action, dtype=np.float64)
        if isinstance(self.action_space, spaces.MultiBinary):
            push = a[[1, 3]] - a[[0, 2]]
        elif isinstance(self.action_space, spaces.Discrete):
            push = MOVES[int(action)]
        else:
            push = a - 1 if isinstance(self.action_space, spaces.MultiDiscrete) else a.reshape(2)
        self.pos = np.clip(self.pos + 0.2 * self.gain * push, -10, 10)
        return self._observe(), -float(np.abs(self.pos).sum()), False, False, {}

    def _observe(self):
        seen = self.observation_space
        if isinstance(seen, spaces.Box):
            return self.pos.astype(np.float32)
        cell = np.clip(np.round(self.pos).astype(np.int64) + 2, 0, 4)
        if isinstance(seen, spaces.Discrete):
            return np.int64(cell[0] * 5 + cell[1])
        if isinstance(seen, spaces.MultiDiscrete):
            return cell
        return np.concatenate([np.eye(5, dtype=np.int8)[cell[0]], np.eye(5, dtype=np.int8)[cell[1]]])


def plane_family(
    name: str, action_space: spaces.Space | None = None, observation_space: spaces.Space | None = None
) -> Family:
    """Family ``name`` of :data:`KINDS` or :data:`SEEN`, with its spaces, or with the spaces given."""
    seen, acts = SEEN.get(name, (POSITION, KINDS.get(name)))
    acts = acts if action_space is None else action_space
    seen = seen if observation_space is None else observation_space
    return register_family(
        Family(
            name=name, parameters=[Parameter("gain", default=1.0, low=0.25, high=3.0)],
            build=lambda p: gym.wrappers.TimeLimit(Plane(p["gain"], acts, seen), max_episode_steps=30),
            tasks={"default": {}, "slow": {"gain": 0.5}, "fast": {"gain": 2.0}}, source=["default", "slow"],
            targets=["fast"], reward_threshold=-20.0,
        ),
        overwrite=True,
    )  # fmt: skip


HYPERPARAMS = {
    "ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
    "dqn": {"learning_starts": 50, "batch_size": 32},
    "sac": {"learning_starts": 50, "batch_size": 32},
}


def transfer_with_every_strategy(family: str, algo: str, batch_seeds: bool, tmp_path) -> tuple[Any, list[dict]]:
    """A short experiment of ``family``: ``algo`` pre-trained, then transferred to ``fast`` with every strategy
    that applies to it (probe head choice on), 2 seeds each on the engine asked for; its result and its runs'
    ``result.json``. Every run that trains takes at least two updates of PPO (64 steps each) after the probe's
    episodes, which its budget is charged (1 episode of 30 steps a source head), kickstarting's with its KL
    term in each (not annealed to 0 by the second); the off-policy algorithms take a gradient step a step
    from their 50th."""
    from rltransfer import run_experiment
    from rltransfer.strategies import known_strategies

    strategies = [name for name, s in known_strategies().items() if algo in s.algos]
    cfg = {
        "name": f"{family}-{algo}-{batch_seeds}", "family": family, "output_dir": str(tmp_path / "runs"),
        "agent": {"algo": algo, "hyperparams": HYPERPARAMS[algo]},
        "pretrain": {"timesteps": 256, "envs_per_task": 1, "eval_episodes": 2},
        "transfer": {"timesteps": 256, "seeds": 2, "n_envs": 2, "strategies": strategies, "head_init": "probe",
                     "probe_episodes": 1, "strategy_params": {"kickstart": {"anneal": 1.0}} if algo == "ppo" else {}},
        "evaluation": {"every": 64, "episodes": 2}, "runner": {"workers": 1, "batch_seeds": batch_seeds},
    }  # fmt: skip
    result = run_experiment(cfg, progress=False, echo=False)
    assert not result.failed
    results = [json.loads(p.read_text()) for p in sorted((result.run_dir / "runs/fast").glob("*/seed-*/result.json"))]
    assert len(results) == len(strategies) * 2
    trained = [r for r in results if r["strategy"] != "zero_shot"]
    assert {r.get("engine", "sb3") for r in trained} == {"batched" if batch_seeds else "sb3"}  # sb3: unrecorded
    for r in trained:  # each updated its agent (the probe's episodes did not take its whole budget)
        logged = EventAccumulator(str(result.run_dir / "tb/fast" / r["strategy"] / f"seed-{r['seed']}")).Reload()
        tags = logged.Tags()["scalars"]
        assert any(t.startswith("train/") and t.endswith("loss") for t in tags), (r["strategy"], r["seed"], tags)
        assert r["strategy"] != "kickstart" or "train/kickstart_kl" in tags, tags
    return result, results
