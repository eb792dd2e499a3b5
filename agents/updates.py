"""What rltransfer's algorithms (PPO, DQN, SAC) add to SB3's updates: learning rates per parameter
group, and a stop at the first update that leaves non-finite parameters."""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm


class NonFiniteError(RuntimeError):
    """An update left NaN or infinite parameters (a non-finite loss or gradient)."""


def non_finite_parameter(module: torch.nn.Module) -> str | None:
    """The name of ``module``'s first parameter with a NaN or infinite value (None: none has one): one check of
    all the parameters at once, their names looked up only where it fails."""
    params = [p.detach().reshape(-1) for p in module.parameters()]
    if not params or torch.isfinite(torch.cat(params)).all():
        return None
    return next(name for name, p in module.named_parameters() if not torch.isfinite(p).all())


def check_finite(model: BaseAlgorithm, cause: BaseException | None = None) -> None:
    """Raise :class:`NonFiniteError` naming the first non-finite parameter of ``model.policy``.

    Called once per ``train()``, not per gradient step: a per-step hook costs ~3% of throughput.
    """
    name = non_finite_parameter(model.policy)
    if name is not None:
        raise NonFiniteError(
            f"non-finite parameters ({name}) after the update at step {model.num_timesteps} "
            "(the loss or its gradients were NaN or infinite)"
        ) from cause


def scaled_learning_rate(model: BaseAlgorithm, optimizers: Any) -> None:
    """SB3's ``_update_learning_rate``, except that each parameter group gets
    ``schedule value * group["lr_mult"]`` (SB3 sets every group to the schedule value)."""
    lr = model.lr_schedule(model._current_progress_remaining)
    model.logger.record("train/learning_rate", lr)
    for opt in optimizers if isinstance(optimizers, list) else [optimizers]:
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)


_CHECKS: WeakKeyDictionary[BaseAlgorithm, int] = WeakKeyDictionary()
"""Per model, how many times its losses were checked."""


def check_losses_finite(model: BaseAlgorithm, keys: tuple[str, ...], every: int = 50) -> None:
    """For off-policy algorithms, whose ``train()`` runs every few environment steps: the losses
    just logged are checked at each call (a non-finite loss is what makes parameters non-finite),
    every parameter only once per ``every`` calls."""
    values = model.logger.name_to_value
    if any(k in values and not np.isfinite(values[k]) for k in keys):
        check_finite(model)
        raise NonFiniteError(f"non-finite loss ({', '.join(keys)}) in the update at step {model.num_timesteps}")
    _CHECKS[model] = _CHECKS.get(model, 0) + 1
    if _CHECKS[model] % every == 0:
        check_finite(model)
