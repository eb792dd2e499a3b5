"""SB3 callbacks: per-task episode logging and hyperparameters for TensorBoard."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import HParam

from rltransfer.envs import MultiTaskVecEnv


class PerTaskLogger(BaseCallback):
    """Records ``<prefix>/<task>/ep_return`` and ``ep_length`` (mean of the last 100 episodes).

    Recorded at each rollout end, so it lands on the same TensorBoard step as SB3's own dump.
    """

    def __init__(self, env: MultiTaskVecEnv, prefix: str = "pretrain"):
        super().__init__()
        self.env = env
        self.prefix = prefix

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        for name in self.env.task_names:
            returns = self.env.episode_returns[name]
            if returns:
                self.logger.record(f"{self.prefix}/{name}/ep_return", float(np.mean(returns)))
                self.logger.record(f"{self.prefix}/{name}/ep_length", float(np.mean(self.env.episode_lengths[name])))


class HParamsLogger(BaseCallback):
    """Writes the hyperparameters to TensorBoard's hparams plugin at the start of training."""

    def __init__(self, hparams: dict[str, Any], metrics: tuple[str, ...]):
        super().__init__()
        self.hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        self.metrics = metrics

    def _on_training_start(self) -> None:
        self.logger.record(
            "hparams",
            HParam(self.hparams, {m: 0.0 for m in self.metrics}),
            exclude=("stdout", "log", "json", "csv"),
        )

    def _on_step(self) -> bool:
        return True


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept whole)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
