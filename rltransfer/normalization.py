"""Observation statistics that travel with an encoder (SB3's VecNormalize, made explicit)."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.observation_keys import OBS
from rltransfer.records.observation_stats import ObservationStats


class FrozenRunningMeanStd(RunningMeanStd):
    """Statistics that never update: a frozen encoder keeps the normalisation it was trained with."""

    def update(self, arr: np.ndarray) -> None:
        return None


def obs_stats(env: VecEnv) -> ObservationStats | None:
    """The observation statistics of a VecNormalize, or ``None``."""
    if not isinstance(env, VecNormalize):
        return None
    rms = env.obs_rms[OBS]
    return ObservationStats(
        key=OBS, mean=rms.mean.tolist(), var=rms.var.tolist(), count=float(rms.count), clip_obs=env.clip_obs,
        epsilon=env.epsilon,
    )  # fmt: skip


def with_obs_stats(
    env: VecEnv,
    stats: ObservationStats | None,
    training: bool,
    adapt_obs: bool = True,
    norm_reward: bool = True,
    fresh: bool = False,
) -> VecEnv:
    """Wrap ``env`` in a VecNormalize that starts from ``stats`` (``None``: ``env`` unchanged).

    :param training: update statistics (reward statistics are then re-estimated on this env).
    :param adapt_obs: also update the observation statistics (``False`` keeps them frozen).
    :param norm_reward: normalise rewards (only while training).
    :param fresh: start new observation statistics (SB3's: mean 0, variance 1), keeping only
        ``stats``' settings (key, clipping, epsilon): a run that loads no encoder.
    """
    if stats is None:
        return env
    venv = VecNormalize(
        env,
        training=training,
        norm_obs=True,
        norm_reward=training and norm_reward,
        norm_obs_keys=[stats.key],
        clip_obs=stats.clip_obs,
        epsilon=stats.epsilon,
    )
    rms = RunningMeanStd(shape=np.shape(stats.mean)) if adapt_obs else FrozenRunningMeanStd(shape=np.shape(stats.mean))
    if not fresh:
        rms.mean = np.asarray(stats.mean, dtype=np.float64)
        rms.var = np.asarray(stats.var, dtype=np.float64)
        rms.count = float(stats.count)
    venv.obs_rms[stats.key] = rms
    return venv
