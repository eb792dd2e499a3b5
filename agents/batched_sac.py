"""K seeds of one SAC cell trained side by side as one batched model.

:class:`BatchedSAC` takes K :class:`~rltransfer.agents.multitask_sac.TransferSAC` models already built the
usual way (each with its policy, env, seed, replay buffer and logger) and trains them in lockstep, as
:class:`~rltransfer.agents.batched_ppo.BatchedPPO` does PPO's: every env step, one batched forward pass
acts for all K actors; every gradient step, one batched pass computes every seed's entropy-coefficient,
critic and actor losses, and one optimizer step of each kind updates all K (their actors, critics, per-task
entropy coefficients and critic targets are all stacked over the seeds). SAC takes a gradient step per env
step, so the per-call overhead batching saves is paid far more often than in PPO.

What keeps the seeds independent (seed k's run is the same whichever seeds share its batch, and however
many): each seed has its own env, its own replay buffer, its own random streams (a torch generator for its
action and policy samples, a numpy generator for its replay samples, both from its seed; its warm-up
actions come from its action space's own generator, as in SB3) and its own losses; Adam is elementwise and
keeps a step count per seed, so one optimizer over the stacked parameters is K optimizers. A seed trains
from its own ``learning_starts`` on, whatever the others do; one that stops (its callback says so, or it
fails) is left out of every later update, its parameters as they were.

:meth:`BatchedSAC._train` restates :meth:`TransferSAC.train <rltransfer.agents.multitask_sac.TransferSAC.train>`
(SB3 2.9.2's ``SAC.train`` with an entropy coefficient per task) batched over seeds; with K = 1 and the same
replay samples and noise it equals it to 1e-6 (``tests/test_batched_sac.py``). The off-policy loop around it
is :class:`~rltransfer.agents.batched_off_policy.OffPolicyBatch`'s, shared with DQN. Not supported (the
per-process path runs these): gSDE, action noise, training frequencies counted in episodes, replay buffers other than SB3's
plain ones (or with ``optimize_memory_usage``), ``VecNormalize``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rltransfer.agents.batched_off_policy import OffPolicyBatch, loop_unbatchable, optimizers_unbatchable
from rltransfer.agents.multitask_sac import TransferSAC
from rltransfer.agents.seed_batch import StepEnvs
from rltransfer.agents.stacked import StackedAdam, adam_rows
from rltransfer.agents.transferable import route
from rltransfer.agents.updates import check_losses_finite

EPSILON = 1e-6
"""SB3's ``SquashedDiagGaussianDistribution`` epsilon in the tanh correction of the log-probability."""


def unbatchable(model: Any) -> str | None:
    """Why ``model`` cannot train in a batch of :class:`BatchedSAC` (None: it can)."""
    if type(model) is not TransferSAC:
        return f"{type(model).__name__} is not rltransfer's SAC"
    why = loop_unbatchable(model)
    if why:
        return why
    if model.batch_norm_stats:
        return "batch normalisation"
    return optimizers_unbatchable([model.actor.optimizer, model.critic.optimizer, model.ent_coef_optimizer])


def _actor(policy: Any, obs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's Gaussian mean and (clamped) log-std: what runs for all seeds at once (the squashed
    samples are drawn outside, each seed from its own generator)."""
    mean, log_std, _ = policy.actor.get_action_dist_params(obs)
    return mean, log_std


def _critic(policy: Any, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return policy.critic(obs, actions)


def _critic_target(policy: Any, obs: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return policy.critic_target(obs, actions)


def squashed_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """SB3's ``SquashedDiagGaussianDistribution.log_prob_from_params`` with the Gaussian's noise given: the
    action ``tanh(mean + noise * std)`` and its log-probability (summed over the action's dimensions)."""
    std = torch.ones_like(mean) * log_std.exp()
    gaussian = mean + noise * std
    actions = torch.tanh(gaussian)
    normal = torch.distributions.Normal(mean, std, validate_args=False)
    log_prob = normal.log_prob(gaussian).sum(-1) - torch.sum(torch.log(1 - actions**2 + EPSILON), dim=-1)
    return actions, log_prob


class BatchedSAC(OffPolicyBatch):
    """Train ``models`` (:class:`~rltransfer.agents.multitask_sac.TransferSAC`, one per seed, built alike:
    same policy class and architecture, same hyperparameters and number of envs) as one batched model.
    ``seeds``: each model's seed (its random streams; by default each model's ``seed``)."""

    TB_LOG_NAME = "SAC"

    def __init__(self, models: Sequence[TransferSAC], seeds: Sequence[int] | None = None, step_envs: StepEnvs | None = None):  # fmt: skip
        super().__init__(models, seeds, step_envs, unbatchable)
        ref = self.models[0]
        self.actor_optimizer = StackedAdam(self.stack.param_groups(ref.actor.optimizer))
        self.critic_optimizer = StackedAdam(self.stack.param_groups(ref.critic.optimizer))
        self.log_ent_coef: torch.Tensor | None = None
        self.ent_coef_optimizer: StackedAdam | None = None
        if ref.ent_coef_optimizer is not None:
            rows = self._per_row([m.log_ent_coef.detach() for m in self.models])
            self.log_ent_coef = torch.stack(rows).requires_grad_(True)
            for k, m in enumerate(self.models):
                m.log_ent_coef.data = self.log_ent_coef.data[k]  # each model's coefficients: a view of its row
            group = {key: v for key, v in ref.ent_coef_optimizer.param_groups[0].items() if key != "params"}
            self.ent_coef_optimizer = StackedAdam([{**group, "params": [self.log_ent_coef]}])
            own = [m.ent_coef_optimizer.state.get(m.log_ent_coef) for m in self.models if m.ent_coef_optimizer]
            if any(own):
                self.ent_coef_optimizer.state[self.log_ent_coef] = adam_rows(self.log_ent_coef, own)
        self.stack.import_optimizer_state(self.actor_optimizer, [m.actor.optimizer for m in self.models])
        self.stack.import_optimizer_state(self.critic_optimizer, [m.critic.optimizer for m in self.models])
        self._actor_params = [p for g in self.actor_optimizer.param_groups for p in g["params"]]
        name_of = {id(p): name for name, p in ref.policy.named_parameters()}
        self._targets = [
            (self.stack.params[name_of[id(p)]], self.stack.params[name_of[id(t)]])
            for p, t in zip(ref.critic.parameters(), ref.critic_target.parameters())
        ]  # (critic, its target), stacked: what the Polyak update moves

    def _differences(self, m: Any, ref: Any) -> list[str]:
        diff = ["target_entropy"] if m.target_entropy != ref.target_entropy else []
        if (m.ent_coef_optimizer is None) != (ref.ent_coef_optimizer is None):
            diff.append("ent_coef")
        return diff

    # -- acting ---------------------------------------------------------------------------------------------
    def predict(self, observations: Mapping[int, Any]) -> dict[int, np.ndarray]:
        """Each seed's deterministic actions for its observations (``{seed index: observations}``), as its
        model's ``predict(obs, deterministic=True)`` gives them (the squashed mean, in the action space's
        bounds), from one batched forward pass."""
        first = next(iter(observations.values()))
        with torch.no_grad():
            mean, _ = self.stack.call(_actor, self._obs([observations.get(k, first) for k in range(self.rows)]))
            actions = torch.tanh(mean)
        return {k: self._unscaled(k, actions[k]) for k in observations}

    def _unscaled(self, k: int, actions: torch.Tensor) -> np.ndarray:
        """What ``predict`` returns of a squashed action: reshaped to the action space, unscaled to its bounds."""
        m = self.models[k]
        return m.policy.unscale_action(actions.numpy().reshape((-1, *m.action_space.shape)))

    def _noise(self, seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
        """A ``[rows, *shape]`` standard normal draw, each of ``seeds``' rows from its seed's generator (the
        other rows zero: they draw nothing)."""
        noise = torch.zeros(self.rows, *shape)
        for k in seeds:
            noise[k] = torch.randn(shape, generator=self.action_rngs[k])
        return noise

    def _policy_actions(self, seeds: Sequence[int]) -> dict[int, np.ndarray]:
        """Each of ``seeds``' actor samples (what its ``predict(obs, deterministic=False)`` gives), drawn for
        all seeds in one forward pass, each from its own generator."""
        with torch.no_grad():
            mean, log_std = self.stack.call(_actor, self._current_obs())
            actions, _ = squashed_sample(mean, log_std, self._noise(seeds, tuple(mean.shape[1:])))
        return {k: self._unscaled(k, actions[k]) for k in seeds}

    def _export_optimizers(self) -> None:
        """Each model's own optimizers given its seed's row of the batch's state (a saved model resumes
        training where the batch left it)."""
        self.stack.export_optimizer_state(self.actor_optimizer, [m.actor.optimizer for m in self.models])
        self.stack.export_optimizer_state(self.critic_optimizer, [m.critic.optimizer for m in self.models])
        if self.ent_coef_optimizer is None or self.log_ent_coef not in self.ent_coef_optimizer.state:
            return
        state = self.ent_coef_optimizer.state[self.log_ent_coef]
        for k, m in enumerate(self.models):
            assert m.ent_coef_optimizer is not None
            m.ent_coef_optimizer.state[m.log_ent_coef] = {
                "step": torch.tensor(float(state["step"][k])),
                "exp_avg": state["exp_avg"][k].clone(),
                "exp_avg_sq": state["exp_avg_sq"][k].clone(),
            }
            m.ent_coef_optimizer.param_groups[0]["lr"] = float(self.ent_coef_optimizer.last_lr[k])

    # -- the update: TransferSAC.train batched over seeds -------------------------------------------------------
    def _log_alpha(self, obs: Any, log_ent_coef: torch.Tensor, batch: int) -> torch.Tensor:
        """Each sample's log entropy coefficient, ``[rows, batch, 1]`` (``TransferSAC._log_alpha`` per row)."""
        policy = self.models[0].policy
        flat = {key: v.flatten(0, 1) for key, v in obs.items()} if isinstance(obs, dict) else obs.flatten(0, 1)
        mask = route(flat, policy.obs_layout, len(policy.heads))
        if mask is None:
            return log_ent_coef[:, :1].unsqueeze(1).expand(self.rows, batch, 1)
        mask = mask.squeeze(1).reshape(self.rows, batch, -1)
        return (mask * log_ent_coef.unsqueeze(1)).sum(-1, keepdim=True)

    def _train(self, seeds: list[int], gradient_steps: int) -> None:
        ref = self.models[0]
        self._training_mode(True)
        lr = self._learning_rates(seeds)
        mask = torch.zeros(self.rows, dtype=torch.bool)
        mask[seeds] = True
        stepping = self._stepping_rows(seeds)
        logged: dict[str, list[torch.Tensor]] = {"ent_coef": [], "actor_loss": [], "critic_loss": [], "ent_coef_loss": []}  # fmt: skip
        for gradient_step in range(gradient_steps):
            data = self._replay(seeds, ref.batch_size)
            parts = self._gradient_step(data, seeds, mask, lr, stepping)
            for key, value in parts.items():
                logged[key].append(value)
            if gradient_step % ref.target_update_interval == 0:
                self._polyak(ref.tau, stepping)
        self._record_train(seeds, gradient_steps, {key: torch.stack(v).double() for key, v in logged.items() if v})

    def _gradient_step(
        self, data: dict[str, Any], seeds: list[int], mask: torch.Tensor, lr: torch.Tensor, stepping: list[int] | None
    ) -> dict[str, torch.Tensor]:
        """One gradient step of ``TransferSAC.train`` for every seed: its entropy coefficients, critic and actor;
        each seed's losses (``[rows]``)."""
        ref = self.models[0]
        obs, next_obs = data["observations"], data["next_observations"]
        batch = data["rewards"].shape[1]
        mean, log_std = self.stack.call(_actor, obs)
        actions_pi, log_prob = squashed_sample(mean, log_std, self._noise(seeds, tuple(mean.shape[1:])))
        log_prob = log_prob.unsqueeze(-1)
        out: dict[str, torch.Tensor] = {}
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            log_alpha = self._log_alpha(obs, self.log_ent_coef, batch)
            ent_coef = log_alpha.detach().exp()
            ent_coef_loss = -(log_alpha * (log_prob + ref.target_entropy).detach()).mean((1, 2))
            out["ent_coef_loss"] = ent_coef_loss.detach()
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss[mask].sum().backward()
            self.ent_coef_optimizer.step(lr, stepping)
        else:
            ent_coef = ref.ent_coef_tensor.expand(self.rows, batch, 1)
        out["ent_coef"] = ent_coef.mean((1, 2))
        with torch.no_grad():
            next_mean, next_log_std = self.stack.call(_actor, next_obs)
            next_actions, next_log_prob = squashed_sample(next_mean, next_log_std, self._noise(seeds, tuple(next_mean.shape[1:])))  # fmt: skip
            next_q = torch.cat(self.stack.call(_critic_target, next_obs, next_actions), dim=-1)
            next_q, _ = torch.min(next_q, dim=-1, keepdim=True)
            next_q = next_q - ent_coef * next_log_prob.unsqueeze(-1)
            target_q = data["rewards"] + (1 - data["dones"]) * ref.gamma * next_q
        current_q = self.stack.call(_critic, obs, data["actions"])
        critic_loss = 0.5 * sum(((q - target_q) ** 2).mean((1, 2)) for q in current_q)
        assert isinstance(critic_loss, torch.Tensor)
        out["critic_loss"] = critic_loss.detach()
        self.critic_optimizer.zero_grad()
        critic_loss[mask].sum().backward()
        self.critic_optimizer.step(lr, stepping)
        q_pi = torch.cat(self.stack.call(_critic, obs, actions_pi), dim=-1)
        min_q_pi, _ = torch.min(q_pi, dim=-1, keepdim=True)
        actor_loss = (ent_coef * log_prob - min_q_pi).mean((1, 2))
        out["actor_loss"] = actor_loss.detach()
        self.actor_optimizer.zero_grad()
        # The actor's gradients only: SB3's backward() also computes the critic's, which its next zero_grad drops.
        actor_loss[mask].sum().backward(inputs=self._actor_params)
        self.actor_optimizer.step(lr, stepping)
        return out

    @torch.no_grad()
    def _polyak(self, tau: float, stepping: list[int] | None) -> None:
        """SB3's ``polyak_update`` of every critic target toward its critic, row by row (the rows that do not
        train keep their targets)."""
        targets = [t for _, t in self._targets]
        kept = [] if stepping is None else [k for k in range(self.rows) if k not in set(stepping)]
        saved = [t[kept].clone() for t in targets] if kept else []
        for param, target in self._targets:
            target.mul_(1 - tau)
            torch.add(target, param, alpha=tau, out=target)
        for t, rows in zip(targets, saved):
            t[kept] = rows

    def _record_train(self, seeds: list[int], gradient_steps: int, logged: dict[str, torch.Tensor]) -> None:
        """What ``TransferSAC.train`` logs at its end, each seed to its own logger (``logged``: each seed's
        value at every gradient step, ``[steps, rows]``)."""
        means = {key: v.mean(0) for key, v in logged.items()}
        for k in seeds:
            m = self.models[k]
            m._n_updates += gradient_steps
            m.logger.record("train/n_updates", m._n_updates, exclude="tensorboard")
            m.logger.record("train/ent_coef", float(means["ent_coef"][k]))
            for name, value in m.ent_coefs.items():
                m.logger.record(f"train/ent_coef/{name}", value)
            m.logger.record("train/actor_loss", float(means["actor_loss"][k]))
            m.logger.record("train/critic_loss", float(means["critic_loss"][k]))
            if "ent_coef_loss" in means:
                m.logger.record("train/ent_coef_loss", float(means["ent_coef_loss"][k]))
            self._guard(k, check_losses_finite, m, ("train/actor_loss", "train/critic_loss", "train/ent_coef_loss"))
