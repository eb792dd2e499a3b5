"""The observation statistics of ``agent.normalize``: SB3's ``VecNormalize`` running mean and variance of the
observation's ``obs`` entry, with the settings that apply them. A bundle's manifest carries its pre-training's
(its encoder was trained on observations normalised so), and a saved target agent the ones it acted with;
:mod:`rltransfer.normalization` takes them from a ``VecNormalize`` and puts them into one."""

from __future__ import annotations

import numpy as np
from pydantic import ConfigDict

from rltransfer.records.base import Record


class ObservationStats(Record):
    """One observation entry's statistics and settings, as SB3's ``VecNormalize`` holds them."""

    model_config = ConfigDict(frozen=True)

    key: str
    """The observation entry normalised (``VecNormalize``'s ``norm_obs_keys``: the task's own observation)."""
    mean: list[float]
    var: list[float]
    count: float
    """How many observations the mean and variance are of (``RunningMeanStd.count``)."""
    clip_obs: float
    epsilon: float

    def normalise(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` normalised as ``VecNormalize`` does with these statistics frozen (tested equal to SB3's)."""
        mean, var = np.asarray(self.mean), np.asarray(self.var)
        out = np.clip((obs - mean) / np.sqrt(var + self.epsilon), -self.clip_obs, self.clip_obs)
        return out.astype(np.float32)
