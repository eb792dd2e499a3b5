"""The seeds' action distributions, batched: what the batched engine does with K seeds' action parameters
(``[K, batch, ...]``) where SB3's distribution does it with one seed's (log-probabilities, entropies, modes,
samples from each seed's own generator, kickstarting's KL).

Sampling does not go through ``torch.distributions``' ``sample``: row ``i``'s draws come from generator
``rngs[i]`` alone (a Categorical by the inverse of its cumulative probabilities, a Gaussian from its own
standard normal noise), so a seed's actions are the same whichever seeds share its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from gymnasium import spaces


def distribution(params: tuple[torch.Tensor, ...]) -> torch.distributions.Distribution:
    """The action distribution of batched action parameters, as SB3's Categorical or DiagGaussian builds it
    (log-probabilities and entropies of a Gaussian summed over the action's dimensions by the caller)."""
    if len(params) == 1:
        return torch.distributions.Categorical(logits=params[0], validate_args=False)
    mean, log_std = params
    if log_std.dim() < mean.dim():  # one log-std per seed (a single head), not per sample
        log_std = log_std.unsqueeze(1)
    return torch.distributions.Normal(mean, torch.ones_like(mean) * log_std.exp(), validate_args=False)


class Actions:
    """What the batched engine does with the seeds' action parameters (``[K, batch, ...]``), as SB3's
    distribution for ``space`` does with one seed's: Categorical (Discrete), DiagGaussian (Box),
    MultiCategorical (MultiDiscrete: one Categorical per sub-action, on its slice of the logits) or Bernoulli
    (MultiBinary). Log-probabilities and entropies are summed over a sample's sub-actions or dimensions."""

    def __init__(self, space: spaces.Space):
        self.discrete = isinstance(space, spaces.Discrete)
        self.splits = [int(n) for n in space.nvec] if isinstance(space, spaces.MultiDiscrete) else None
        self.binary = isinstance(space, spaces.MultiBinary)

    def parts(self, params: tuple[torch.Tensor, ...]) -> Sequence[torch.distributions.Distribution]:
        """The distributions whose log-probabilities and entropies add up to a sample's: one, or one per
        sub-action of a MultiDiscrete."""
        if self.splits is not None:
            return self._categoricals(params)
        if self.binary:
            return [torch.distributions.Bernoulli(logits=params[0], validate_args=False)]
        return [distribution(params)]

    def _categoricals(self, params: tuple[torch.Tensor, ...]) -> list[torch.distributions.Categorical]:
        """A MultiDiscrete's sub-actions' Categoricals, each on its slice of the logits (SB3's MultiCategorical)."""
        assert self.splits is not None
        return [
            torch.distributions.Categorical(logits=p, validate_args=False) for p in params[0].split(self.splits, dim=-1)
        ]

    def taken(self, actions: torch.Tensor) -> torch.Tensor:
        """Stored actions (a rollout buffer keeps floats) as the distribution reads them."""
        if self.discrete:
            return actions.long().flatten(-2)
        return actions.long() if self.splits is not None else actions

    def log_prob_and_entropy(
        self, params: tuple[torch.Tensor, ...], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.splits is not None:
            cats = self._categoricals(params)
            return _summed_log_prob(cats, actions), torch.stack([c.entropy() for c in cats], dim=-1).sum(-1)
        d = self.parts(params)[0]
        if self.discrete:
            return d.log_prob(actions), d.entropy()
        return d.log_prob(actions).sum(-1), d.entropy().sum(-1)

    def log_prob(self, params: tuple[torch.Tensor, ...], actions: torch.Tensor) -> torch.Tensor:
        """The log-probabilities of ``actions`` alone (acting needs no entropy)."""
        if self.splits is not None:
            return _summed_log_prob(self._categoricals(params), actions)
        out = self.parts(params)[0].log_prob(actions)
        return out if self.discrete else out.sum(-1)

    def mode(self, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The deterministic actions, as SB3's ``mode``: the likeliest action (of each sub-action), the
        Gaussian's mean, each binary action rounded from its probability."""
        if self.splits is not None:
            return torch.stack([c.probs.argmax(-1) for c in self._categoricals(params)], dim=-1)
        d = self.parts(params)[0]
        if self.binary:
            return torch.round(cast(torch.distributions.Bernoulli, d).probs)
        return cast(torch.distributions.Categorical, d).probs.argmax(-1) if self.discrete else d.mean

    def sample(self, params: tuple[torch.Tensor, ...], rngs: Sequence[torch.Generator]) -> torch.Tensor:
        """Actions for every row of ``params``, row ``i`` from generator ``rngs[i]`` alone."""
        if self.discrete:
            probs = params[0].softmax(-1)
            u = 1.0 - torch.stack([torch.rand(probs.shape[1], generator=g) for g in rngs])
            return _inverse_cdf(probs, u)
        if self.splits is not None:
            n = params[0].shape[1]
            u = 1.0 - torch.stack([torch.rand((n, len(self.splits)), generator=g) for g in rngs])
            logits = params[0].split(self.splits, dim=-1)
            return torch.stack([_inverse_cdf(p.softmax(-1), u[..., i]) for i, p in enumerate(logits)], dim=-1)
        if self.binary:
            probs = torch.sigmoid(params[0])
            u = torch.stack([torch.rand(probs.shape[1:], generator=g) for g in rngs])
            return (u < probs).to(probs.dtype)
        d = distribution(params)
        noise = torch.stack([torch.randn(d.mean.shape[1:], generator=g) for g in rngs])
        return d.mean + d.stddev * noise

    def kl(self, teacher: tuple[torch.Tensor, ...], student: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``KL(teacher || student)`` per sample (``[K, batch]``), summed over sub-actions or dimensions."""
        kls = [torch.distributions.kl_divergence(t, s) for t, s in zip(self.parts(teacher), self.parts(student))]
        if self.splits is not None:
            return torch.stack(kls, dim=-1).sum(-1)
        return kls[0] if self.discrete else kls[0].sum(-1)


def _summed_log_prob(cats: Sequence[torch.distributions.Categorical], actions: torch.Tensor) -> torch.Tensor:
    """A MultiDiscrete action's log-probability: its sub-actions' (the last dimension of ``actions``), summed."""
    return torch.stack([c.log_prob(a) for c, a in zip(cats, actions.unbind(-1))], dim=-1).sum(-1)


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The action whose cumulative probability first exceeds ``u`` (one per row and env): a Categorical draw."""
    actions = (probs.cumsum(-1) < u.unsqueeze(-1)).sum(-1)
    last = (probs > 0).float().cumsum(-1).argmax(-1)  # the last action of non-zero probability
    return torch.minimum(actions, last)


__all__ = ["Actions", "distribution"]
