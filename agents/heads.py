"""Action and value heads of several tasks, stored stacked so that routing is one product.

Head parameters of all tasks live in one matrix per output (``action.weight`` is
``(n_tasks * out, in)``): a batch mixing tasks is served by one matrix product and one mask,
and the optimizer sees a handful of tensors whatever the number of tasks. Bundles still name
every task's head on its own (``heads.<task>.action.weight``, see ``components.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
)
from torch import nn


class StackedLinear(nn.Module):
    """``n`` linear layers of the same shape, stored as one ``(n * out, in)`` matrix.

    ``forward(x, mask)`` computes every layer's output in one product and keeps, for each
    sample, that of its own layer (``mask``: ``(batch, 1, n)`` one-hot, the observation's ``task``;
    one batched product picks each sample's row).
    """

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        self.n, self.in_features, self.out_features = n, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n * out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(n * out_features))
        self.reset_parameters(gain=1.0)

    def reset_parameters(self, gain: float) -> None:
        """Orthogonal weights with ``gain`` for each layer (as SB3 initialises its heads), zero biases."""
        with torch.no_grad():
            for w in self.weight.view(self.n, self.out_features, self.in_features):
                nn.init.orthogonal_(w, gain=gain)
            self.bias.zero_()

    def layer_weight(self, i: int) -> torch.Tensor:
        return self.weight.view(self.n, self.out_features, self.in_features)[i]

    def layer_bias(self, i: int) -> torch.Tensor:
        return self.bias.view(self.n, self.out_features)[i]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.route(nn.functional.linear(x, self.weight, self.bias), mask)

    def route(self, out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Each sample's own layer's output, of every layer's outputs ``out`` (``(batch, n * out)``)."""
        if self.n == 1:
            return out
        if mask is None:
            raise ValueError(f"{self.n} heads need the task of every sample")
        return torch.bmm(mask, out.view(out.shape[0], self.n, self.out_features)).squeeze(1)

    def extra_repr(self) -> str:
        return f"n={self.n}, in_features={self.in_features}, out_features={self.out_features}"


# Logit (or Q-value) offset of an action a task does not have: finite, so that routing products
# stay finite (0 * -inf is NaN), and far enough that softmax gives it probability 0 in float32.
MISSING_ACTION = -1e9


def action_offsets(action_dims: Sequence[int] | None, n_actions: int) -> torch.Tensor | None:
    """``(n_tasks, n_actions)``: 0 for the actions each task has, :data:`MISSING_ACTION` for the others."""
    if action_dims is None or all(int(d) in (0, n_actions) for d in action_dims):
        return None
    out = torch.zeros(len(action_dims), n_actions)
    for i, d in enumerate(action_dims):
        out[i, int(d) :] = MISSING_ACTION
    return out


def route_offsets(offsets: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Each sample's action offsets (``mask``: ``(batch, 1, tasks)``; ``None``: a single task)."""
    if mask is None:
        return offsets[0]
    return (mask @ offsets).squeeze(1)


class TaskHeads(nn.Module):
    """The action output (logits, or Gaussian mean and log-std) and value output of every task.

    :param task_names: one head per name, in ``task`` index order.
    :param action_dist: SB3's action distribution (Categorical, DiagGaussian, MultiCategorical or Bernoulli:
        the logits of every sub-action, one after another, as SB3's own action net gives them).
    :param latent_pi: width of the policy latent.
    :param latent_vf: width of the value latent.
    :param log_std_init: initial log-std for Box actions.
    :param action_dims: each task's own number of Discrete actions, where tasks differ (the others
        get probability 0); ``None``: every task has them all.
    """

    action_offsets: torch.Tensor | None  # a buffer

    def __init__(
        self, task_names: Sequence[str], action_dist: Distribution, latent_pi: int, latent_vf: int,
        log_std_init: float = 0.0, action_dims: Sequence[int] | None = None,
    ):  # fmt: skip
        super().__init__()
        self.task_names = list(task_names)
        n = len(self.task_names)
        if isinstance(action_dist, DiagGaussianDistribution):
            out = action_dist.action_dim
            self.log_std = nn.Parameter(torch.full((n, out), float(log_std_init)))
        elif isinstance(action_dist, CategoricalDistribution):
            out = action_dist.action_dim
        elif isinstance(action_dist, MultiCategoricalDistribution):
            out = sum(action_dist.action_dims)
        elif isinstance(action_dist, BernoulliDistribution):
            out = action_dist.action_dims
        else:
            raise ValueError(
                f"unsupported action distribution {type(action_dist).__name__}; "
                "rltransfer supports Discrete, Box, MultiDiscrete and MultiBinary action spaces"
            )
        self.action = StackedLinear(n, latent_pi, out)
        self.value = StackedLinear(n, latent_vf, 1)
        offsets = action_offsets(action_dims, out) if isinstance(action_dist, CategoricalDistribution) else None
        self.register_buffer("action_offsets", offsets, persistent=False)

    def action_out(self, latent: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Each sample's action logits (actions its task lacks at :data:`MISSING_ACTION`) or Gaussian mean."""
        out = self.action(latent, mask)
        return out if self.action_offsets is None else out + route_offsets(self.action_offsets, mask)

    def __len__(self) -> int:
        return len(self.task_names)

    def init_weights(self, action_gain: float = 0.01, value_gain: float = 1.0) -> None:
        """SB3's output initialisation: small action weights, unit-gain value weights."""
        self.action.reset_parameters(action_gain)
        self.value.reset_parameters(value_gain)

    def log_std_of(self, mask: torch.Tensor | None) -> torch.Tensor:
        return self.log_std[0] if len(self) == 1 or mask is None else (mask @ self.log_std).squeeze(1)
