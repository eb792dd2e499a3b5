"""PPO variants for transfer: per-group learning rates, and kickstarting (Schmitt et al. 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import explained_variance
from torch.nn import functional as F

from rltransfer.agents.updates import NonFiniteError, check_finite, scaled_learning_rate
from rltransfer.observation_keys import OBS, TASK

if TYPE_CHECKING:
    from rltransfer.agents.multitask_policy import MultiTaskActorCriticPolicy

__all__ = ["KickstartPPO", "NonFiniteError", "TransferPPO"]

COPIED_FROM = (
    "stable_baselines3.PPO.train",
    "2.9.2",
    "7c8d09940123242f0ac401c5ec2cc858b8bf3339f571c222382f048ffd8306ae",
)
"""``KickstartPPO._kickstart_train`` restates this SB3 method (the sha256 of its source at that version);
a test fails when the installed SB3's differs, so that the copy is compared with it again."""


def kl_divergence(teacher: Any, student: Any) -> torch.Tensor:
    """``KL(teacher || student)`` of two action distributions as SB3 holds them (``Distribution.distribution``):
    a torch distribution, or a list of Categoricals (SB3's MultiCategorical: one per sub-action), whose KLs
    stand side by side in the last dimension, as a Gaussian's or a Bernoulli's per action dimension."""
    if isinstance(student, list):
        return torch.stack([torch.distributions.kl_divergence(t, s) for t, s in zip(teacher, student)], dim=-1)
    return torch.distributions.kl_divergence(teacher, student)


class TransferPPO(PPO):
    """PPO whose learning-rate schedule keeps the policy's parameter groups apart, and which stops
    at the first update that leaves non-finite parameters.

    SB3 sets every group's learning rate to the schedule value at each ``train()``; here each
    group gets ``schedule value * group["lr_mult"]`` (see the policy's ``lr_mults``).
    A model saved from it loads in plain SB3 (``PPO.load``).
    """

    def train(self) -> None:
        try:
            super().train()
        except ValueError as err:  # torch's distributions refuse NaN logits/means mid-update
            check_finite(self, err)
            raise
        check_finite(self)

    def _update_learning_rate(self, optimizers: Any) -> None:
        scaled_learning_rate(self, optimizers)


class KickstartPPO(TransferPPO):
    """PPO plus ``beta * KL(teacher || student)`` toward a frozen teacher policy.

    ``beta`` falls linearly from ``beta`` to zero over the first ``anneal`` fraction of the
    budget and stays zero after. The teacher sees the same observations, routed to
    ``teacher_head`` (its head for the target task). A teacher pre-trained with tasks of more
    ``Discrete`` actions than the target's teaches over the target's: its head for the target masks
    the others (they carry no probability), so its distribution is kept to the student's actions.

    :param teacher: the pre-trained policy (never updated).
    :param beta: initial weight of the distillation loss.
    :param anneal: fraction of the budget over which ``beta`` reaches zero.
    :param teacher_head: the teacher's head index for the target task.
    """

    policy: MultiTaskActorCriticPolicy

    def __init__(
        self, *args: Any, teacher=None, beta: float = 1.0, anneal: float = 0.5, teacher_head: int = 0, **kwargs
    ):
        self.teacher = teacher
        self.beta0 = float(beta)
        self.anneal = float(anneal)
        self.teacher_head = int(teacher_head)
        self.teacher_heads = len(teacher.heads) if teacher is not None else 1
        self.kickstart_log: list[tuple[int, float, float]] = []
        super().__init__(*args, **kwargs)
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.set_training_mode(False)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "teacher", "kickstart_log"]

    def beta(self) -> float:
        """The distillation weight now: linear from ``beta`` to 0 at ``anneal`` of the budget."""
        progress = 1.0 - self._current_progress_remaining
        if self.anneal <= 0 or progress >= self.anneal:
            return 0.0
        return self.beta0 * (1.0 - progress / self.anneal)

    def _teacher_obs(self, obs: Any) -> Any:
        if isinstance(obs, dict) and TASK in obs:
            obs = dict(obs)
            onehot = torch.zeros(obs[TASK].shape[0], self.teacher_heads, dtype=obs[TASK].dtype)
            onehot[:, self.teacher_head] = 1.0
            obs[TASK] = onehot
            seen = self.teacher.observation_space.spaces[OBS]
            width = seen.shape[0] if isinstance(seen, spaces.Box) and len(seen.shape) == 1 else 0
            if obs[OBS].dim() == 2 and obs[OBS].shape[1] < width:  # the teacher's tasks were padded wider
                obs[OBS] = F.pad(obs[OBS], (0, width - obs[OBS].shape[1]))
        return obs

    def _teacher_distribution(self, obs: Any) -> Any:
        dist = self.teacher.get_distribution(self._teacher_obs(obs)).distribution
        if isinstance(self.action_space, spaces.Discrete) and dist.logits.shape[-1] > self.action_space.n:
            return torch.distributions.Categorical(logits=dist.logits[..., : self.action_space.n])
        return dist

    def train(self) -> None:
        """One PPO update, as SB3's, with the kickstarting term added to every minibatch loss."""
        try:
            self._kickstart_train()
        except ValueError as err:
            check_finite(self, err)
            raise
        check_finite(self)

    def _kickstart_loss(
        self, batch: Any, clip_range: float, clip_range_vf: float | None, beta: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """One minibatch's loss (SB3's PPO loss plus ``beta * KL(teacher || student)``) and its logged parts."""
        actions = batch.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        values, log_prob, entropy, student_dist = self.policy.evaluate_with_distribution(batch.observations, actions)
        values = values.flatten()
        adv = batch.advantages
        if self.normalize_advantage and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = torch.exp(log_prob - batch.old_log_prob)
        pg_loss = -torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
        if clip_range_vf is not None:
            values = batch.old_values + torch.clamp(values - batch.old_values, -clip_range_vf, clip_range_vf)
        vf_loss = F.mse_loss(batch.returns, values)
        ent_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
        with torch.no_grad():
            teacher_dist = self._teacher_distribution(batch.observations)
        aux = kl_divergence(teacher_dist, student_dist.distribution)
        aux = aux.sum(-1).mean() if aux.dim() > 1 else aux.mean()
        loss = pg_loss + self.ent_coef * ent_loss + self.vf_coef * vf_loss + beta * aux
        with torch.no_grad():
            log_ratio = log_prob - batch.old_log_prob
            approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).item()
        parts = {
            key: value.item() for key, value in (("pg", pg_loss), ("vf", vf_loss), ("ent", ent_loss), ("aux", aux))
        }
        parts["clip"] = torch.mean((torch.abs(ratio - 1) > clip_range).float()).item()
        parts["kl"] = approx_kl
        return loss, parts

    def _kickstart_train(self) -> None:
        # SB3's PPO.train (COPIED_FROM), with ``beta * KL(teacher || student)`` added to each minibatch loss.
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]  # as in SB3
        clip_range_vf = (
            self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]  # as in SB3
            if self.clip_range_vf is not None
            else None
        )
        beta = self.beta()
        logs: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "ent", "clip", "kl", "aux")}
        continue_training = True
        for _ in range(self.n_epochs):
            logs["kl"] = []  # as SB3's approx_kl_divs: the last epoch's
            for batch in self.rollout_buffer.get(self.batch_size):
                loss, parts = self._kickstart_loss(batch, clip_range, clip_range_vf, beta)
                for key, value in parts.items():
                    logs[key].append(value)
                approx_kl = parts["kl"]
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break
        ev = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        self.logger.record("train/policy_gradient_loss", float(np.mean(logs["pg"])))
        self.logger.record("train/value_loss", float(np.mean(logs["vf"])))
        self.logger.record("train/entropy_loss", float(np.mean(logs["ent"])))
        self.logger.record("train/clip_fraction", float(np.mean(logs["clip"])))
        self.logger.record("train/approx_kl", float(np.mean(logs["kl"])))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", float(ev))
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        self.logger.record("train/kickstart_kl", float(np.mean(logs["aux"])))
        self.logger.record("train/kickstart_beta", beta)
        self.kickstart_log.append((self.num_timesteps, beta, float(np.mean(logs["aux"]))))
