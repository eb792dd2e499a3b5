"""Action and value heads, one per task (or one shared), and routing of samples to them."""

from __future__ import annotations

import torch
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
)
from torch import nn


class TaskHead(nn.Module):
    """The action output (logits or Gaussian mean and log-std) and the value output of one task."""

    def __init__(self, action_dist: Distribution, latent_pi: int, latent_vf: int, log_std_init: float = 0.0):
        super().__init__()
        if isinstance(action_dist, DiagGaussianDistribution):
            self.action, self.log_std = action_dist.proba_distribution_net(latent_pi, log_std_init)
        elif isinstance(action_dist, CategoricalDistribution):
            self.action = action_dist.proba_distribution_net(latent_pi)
        else:
            raise ValueError(
                f"unsupported action distribution {type(action_dist).__name__}; "
                "rltransfer supports Discrete and Box action spaces"
            )
        self.value = nn.Linear(latent_vf, 1)


def route(outputs: list[torch.Tensor], task_index: torch.Tensor) -> torch.Tensor:
    """Pick, for each sample, the output of its task's head.

    :param outputs: one ``(batch, ...)`` tensor per head.
    :param task_index: ``(batch,)`` integer head index of every sample.
    """
    if len(outputs) == 1:
        return outputs[0]
    stacked = torch.stack(outputs, dim=1)
    return stacked[torch.arange(stacked.shape[0], device=stacked.device), task_index]
