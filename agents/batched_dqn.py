"""K seeds of one DQN cell trained side by side as one batched model.

:class:`BatchedDQN` takes K :class:`~rltransfer.agents.multitask_dqn.TransferDQN` models already built the
usual way and trains them in lockstep in the off-policy loop of
:class:`~rltransfer.agents.batched_off_policy.OffPolicyBatch`: every env step, one batched forward pass of the
Q-networks gives every seed's greedy actions; every gradient step, one batched pass computes every seed's
Huber loss on its own replay sample, each seed's gradients are clipped to its own norm, and one Adam step
updates all K. Each seed's target network follows its Q-network in its own ``_on_step``, as in SB3 (its
parameters are views of its rows of the stacked ones).

A seed explores as SB3's ``DQN.predict`` does (one draw a step against its exploration rate, then a random
action per env from its action space), the draw from a numpy generator of its own; its replay samples from
another; so a seed's run is the same whichever seeds share its batch. With K = 1 and the same replay
samples, :meth:`BatchedDQN._train` equals ``TransferDQN.train`` (SB3 2.9.2's ``DQN.train``,
:data:`COPIED_FROM`) to 1e-6 (``tests/test_batched_dqn.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from rltransfer.agents.batched_off_policy import OffPolicyBatch, loop_unbatchable, optimizers_unbatchable
from rltransfer.agents.multitask_dqn import TransferDQN
from rltransfer.agents.seed_batch import StepEnvs
from rltransfer.agents.stacked import StackedAdam
from rltransfer.agents.updates import check_losses_finite

COPIED_FROM = (
    ("train", "2.9.2", "696507cb4053336a892a34781e07fc6884c8d43673ea5cc7cb463f64e086c17e"),
    ("predict", "2.9.2", "bd134514b2b5fa6d78df2cec6bcdd4045c653fcb28ccf70a5368e118852eeffa"),
)
"""Methods of ``stable_baselines3.DQN`` that :class:`BatchedDQN` restates batched over seeds, with the sha256
of their source at that version (a test fails when the installed SB3's differ)."""


def unbatchable(model: Any) -> str | None:
    """Why ``model`` cannot train in a batch of :class:`BatchedDQN` (None: it can)."""
    if type(model) is not TransferDQN:
        return f"{type(model).__name__} is not rltransfer's DQN"
    why = loop_unbatchable(model)
    if why:
        return why
    if model.batch_norm_stats:
        return "batch normalisation"
    return optimizers_unbatchable([model.policy.optimizer])


def _q(policy: Any, obs: Any) -> torch.Tensor:
    return policy.q_net(obs)


def _q_target(policy: Any, obs: Any) -> torch.Tensor:
    return policy.q_net_target(obs)


class BatchedDQN(OffPolicyBatch):
    """Train ``models`` (:class:`~rltransfer.agents.multitask_dqn.TransferDQN`, one per seed, built alike: same
    policy class and architecture, same hyperparameters and number of envs) as one batched model.
    ``seeds``: each model's seed (its random streams; by default each model's ``seed``)."""

    TB_LOG_NAME = "DQN"

    def __init__(self, models: Sequence[TransferDQN], seeds: Sequence[int] | None = None, step_envs: StepEnvs | None = None):  # fmt: skip
        super().__init__(models, seeds, step_envs, unbatchable)
        self.optimizer = StackedAdam(self.stack.param_groups(self.models[0].policy.optimizer))
        self.stack.import_optimizer_state(self.optimizer, [m.policy.optimizer for m in self.models])

    # -- acting ---------------------------------------------------------------------------------------------
    def _greedy(self, obs: Any) -> torch.Tensor:
        """Every row's greedy actions (``[rows, n]``) for its observations ``[rows, n, ...]``."""
        with torch.no_grad():
            return self.stack.call(_q, obs).argmax(dim=-1)

    def predict(self, observations: Mapping[int, Any]) -> dict[int, np.ndarray]:
        """Each seed's greedy actions for its observations (``{seed index: observations}``), as its model's
        ``predict(obs, deterministic=True)`` gives them, from one batched forward pass."""
        first = next(iter(observations.values()))
        actions = self._greedy(self._obs([observations.get(k, first) for k in range(self.rows)]))
        return {k: actions[k].numpy().reshape((-1, *self.models[k].action_space.shape)) for k in observations}

    def _policy_actions(self, seeds: Sequence[int]) -> dict[int, np.ndarray]:
        """``DQN.predict(obs, deterministic=False)`` of each of ``seeds``: with its exploration rate, a random
        action per env from its action space (one draw from its generator decides); otherwise its greedy
        actions, for all such seeds from one forward pass."""
        explore = {k: self.explore_rngs[k].random() < self.models[k].exploration_rate for k in seeds}
        greedy = self._greedy(self._current_obs()) if not all(explore.values()) else None
        out = {}
        for k in seeds:
            m = self.models[k]
            if explore[k]:
                out[k] = np.array([m.action_space.sample() for _ in range(m.n_envs)])
            else:
                assert greedy is not None
                out[k] = greedy[k].numpy().reshape((-1, *m.action_space.shape))
        return out

    # -- the update: DQN.train batched over seeds -----------------------------------------------------------
    def _train(self, seeds: list[int], gradient_steps: int) -> None:
        ref = self.models[0]
        self._training_mode(True)
        lr = self._learning_rates(seeds)
        mask = torch.zeros(self.rows, dtype=torch.bool)
        mask[seeds] = True
        stepping = self._stepping_rows(seeds)
        losses = []
        for _ in range(gradient_steps):
            data = self._replay(seeds, ref.batch_size)
            with torch.no_grad():
                next_q, _ = self.stack.call(_q_target, data["next_observations"]).max(dim=-1)
                target_q = data["rewards"] + (1 - data["dones"]) * ref.gamma * next_q.unsqueeze(-1)
            current_q = torch.gather(self.stack.call(_q, data["observations"]), dim=-1, index=data["actions"].long())
            loss = F.smooth_l1_loss(current_q, target_q, reduction="none").mean((1, 2))
            losses.append(loss.detach())
            self.optimizer.zero_grad()
            loss[mask].sum().backward()
            self.stack.clip_grad_norm_(ref.max_grad_norm)
            self.optimizer.step(lr, stepping)
        mean = torch.stack(losses).double().mean(0)
        for k in seeds:
            m = self.models[k]
            m._n_updates += gradient_steps
            m.logger.record("train/n_updates", m._n_updates, exclude="tensorboard")
            m.logger.record("train/loss", float(mean[k]))
            self._guard(k, check_losses_finite, m, ("train/loss",))

    def _export_optimizers(self) -> None:
        self.stack.export_optimizer_state(self.optimizer, [m.policy.optimizer for m in self.models])
