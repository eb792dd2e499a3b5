"""K seeds of one PPO cell trained side by side as one batched model.

:class:`BatchedPPO` takes K PPO models already built the usual way (each with its policy, its env, its
seed, its logger) and trains them in lockstep: every step, one batched forward pass acts for all K
policies (:class:`~rltransfer.agents.stacked.StackedPolicies`); every minibatch, one batched backward pass
and one optimizer step update all K. Everything else is each model's own and SB3's: its env and its
callbacks, its ``RolloutBuffer`` (returns and advantages), its logger, its timestep count, ``dump_logs``.
After ``learn`` each model is a normal SB3 PPO, with its seed's weights and optimizer state: ``save`` it.

What keeps the seeds independent (seed k's run is the same whichever seeds share its batch, and however
many): each seed has its own env, its own random streams (a torch generator for its action samples, a
numpy generator for its minibatch order, both from its seed), its own advantage normalisation, clip
fraction and losses, and its own gradient clipping (the 2-norm over its own parameters); Adam is
elementwise, so one optimizer over the stacked parameters is K optimizers. A seed that stops (its callback
says so, or it fails) is left out of every later update; its parameters stay as they were.

The update restates SB3's ``PPO.train`` (2.9.2; :data:`COPIED_FROM`) batched over seeds; with K = 1 and
the same minibatch order it equals SB3's (``tests/test_batched.py``, to 1e-6 in every parameter).
Kickstarting (:class:`~rltransfer.agents.transfer_ppo.KickstartPPO`) is batched too: each seed's teacher is
stacked like its policy, and its distillation term is added to the seed's loss as ``KickstartPPO`` adds it.
Not supported (the per-process path runs these): gSDE, ``target_kl`` (its early stop is per seed and
per minibatch), and other subclasses of PPO that change ``train``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import explained_variance

from rltransfer.agents.batched_actions import Actions
from rltransfer.agents.seed_batch import SeedBatch, StepEnvs, numpy_stream, one_by_one, torch_stream
from rltransfer.agents.stacked import StackedAdam, StackedPolicies, adam_unsupported
from rltransfer.agents.transfer_ppo import KickstartPPO, TransferPPO
from rltransfer.agents.updates import check_finite

COPIED_FROM = (
    "stable_baselines3.PPO.train",
    "2.9.2",
    "7c8d09940123242f0ac401c5ec2cc858b8bf3339f571c222382f048ffd8306ae",
)
""":meth:`BatchedPPO._train` restates this SB3 method batched over seeds; ``collect_rollouts`` and ``learn``
of ``OnPolicyAlgorithm`` likewise (:data:`COPIED_LOOPS`). A test fails when the installed SB3's differ."""

COPIED_LOOPS = (
    ("collect_rollouts", "2.9.2", "07f9eed35d9d7392f6ce287dc9d55aede83d8b0f93d34cb5d643410cdf11e3b7"),
    ("learn", "2.9.2", "193ab72530ae02ce75343af94f77a239d5cf14a9acf1d00ec4080dc98211715b"),
)
"""Methods of ``stable_baselines3.common.on_policy_algorithm.OnPolicyAlgorithm`` that :meth:`BatchedPPO.learn`
and :meth:`BatchedPPO._collect_rollouts` restate, with the sha256 of their source at that version."""

_SAME = ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm",
         "normalize_advantage", "target_kl", "use_sde")  # fmt: skip


def unbatchable(model: Any) -> str | None:
    """Why ``model`` cannot train in a batch (None: it can)."""
    if not isinstance(model, PPO):
        return f"{type(model).__name__} is not PPO"
    if type(model) not in (PPO, TransferPPO, KickstartPPO):
        return f"{type(model).__name__} changes PPO's update"
    if isinstance(model, KickstartPPO) and not hasattr(model.teacher, "action_params_and_value"):
        return f"its teacher, a {type(model.teacher).__name__}, is not one of rltransfer's multi-task policies"
    if model.use_sde:
        return "gSDE"
    if model.target_kl is not None:
        return "target_kl stops each seed's epochs on its own"
    if type(model.policy.optimizer) is not torch.optim.Adam:
        return f"its optimizer is {type(model.policy.optimizer).__name__}, not Adam"
    why = next((w for w in map(adam_unsupported, model.policy.optimizer.param_groups) if w), None)
    if why:
        return f"its Adam: {why}"
    if not hasattr(model.policy, "action_params_and_value"):
        return f"{type(model.policy).__name__} is not one of rltransfer's multi-task policies"
    return None


def _net(policy: Any, obs: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """What runs for all seeds at once: the policy's network, to its action parameters and values (the
    distributions are built outside, on all seeds' parameters at once: under vmap, fewer operations)."""
    return policy.action_params_and_value(obs)


def _actor(policy: Any, obs: Any) -> tuple[torch.Tensor, ...]:
    """The action parameters alone (acting in an evaluation: the critic's half of the network is not run)."""
    return policy.action_params(obs)


def _values(policy: Any, obs: Any) -> torch.Tensor:
    return policy.predict_values(obs)


__all__ = ["BatchedPPO", "StepEnvs", "one_by_one", "unbatchable"]


class BatchedPPO(SeedBatch):
    """Train ``models`` (PPO, one per seed, built alike: same policy class and architecture, same
    hyperparameters and number of envs) as one batched model. ``seeds``: each model's seed (its random
    streams; by default each model's ``seed``)."""

    def __init__(self, models: Sequence[PPO], seeds: Sequence[int] | None = None, step_envs: StepEnvs | None = None):
        super().__init__(models, step_envs, unbatchable, (*_SAME, "n_envs"))
        ref = self.models[0]
        self.stack = StackedPolicies([m.policy for m in self.models])
        self.teachers = (
            StackedPolicies([cast(KickstartPPO, m).teacher for m in self.models])
            if isinstance(ref, KickstartPPO)
            else None
        )
        """The seeds' kickstarting teachers (frozen), stacked as their students are: one forward pass for all."""
        self.optimizer = StackedAdam(self.stack.param_groups(ref.policy.optimizer))
        self.stack.import_optimizer_state(self.optimizer, [m.policy.optimizer for m in self.models])
        seeds = [m.seed if m.seed is not None else 0 for m in self.models] if seeds is None else list(seeds)
        self.action_rngs = [torch_stream(s, 0) for s in seeds]
        self.minibatch_rngs: list[Any] = [numpy_stream(s, 1) for s in seeds]
        self.actions = Actions(ref.action_space)
        """What the seeds' action parameters mean (their distribution, as SB3's for the action space)."""

    def _differences(self, m: Any, ref: Any) -> list[str]:
        return ["kickstarting"] if type(m) is not type(ref) and KickstartPPO in (type(m), type(ref)) else []

    def predict(self, observations: Mapping[int, Any]) -> dict[int, np.ndarray]:
        """Each seed's deterministic actions for its observations (``{seed index: observations}``), as its
        model's ``predict(obs, deterministic=True)`` gives them (Box actions clipped to the space), from one
        batched forward pass."""
        first = next(iter(observations.values()))
        with torch.no_grad():
            params = self.stack.call(_actor, self._obs([observations.get(k, first) for k in range(self.rows)]))
            actions = self.actions.mode(params)  # SB3's mode
        out = {}
        for k in observations:
            out[k] = self._clip(k, self._shaped(k, actions[k].numpy()))
        return out

    # -- learn: OnPolicyAlgorithm.learn, seed by seed in lockstep ---------------------------------------
    def learn(
        self,
        total_timesteps: int | Sequence[int],
        callbacks: Sequence[Any] | None = None,
        reset_num_timesteps: bool | Sequence[bool] = True,
        tb_log_name: str = "PPO",
        progress_bar: bool = False,
    ) -> BatchedPPO:
        """Each model learns as its ``learn(total_timesteps, callbacks[k], reset_num_timesteps)`` would (each
        argument one for all seeds, or one per seed: a seed whose first steps went elsewhere learns the rest
        of its budget, from its own step count). A seed that raises is recorded in :attr:`failed` and left
        out; the others go on."""
        totals, cbs = self._setup(total_timesteps, callbacks, reset_num_timesteps, tb_log_name, progress_bar)
        active = []
        for k, cb in enumerate(cbs):
            if self._guard(k, cb.on_training_start, {}, {}):
                active.append(k)
        self._stepped(active)
        active = [k for k in active if self.models[k].num_timesteps < totals[k]]
        iteration = 0
        while active:
            collected = self._collect_rollouts(cbs, active)
            iteration += 1
            for k in collected:
                m = self.models[k]
                m._update_current_progress_remaining(m.num_timesteps, totals[k])
                self._guard(k, m.dump_logs, iteration)
            collected = [k for k in collected if k not in self.failed]
            if collected:
                self._train(collected)
            active = [k for k in collected if k not in self.failed and self.models[k].num_timesteps < totals[k]]
        for k, cb in enumerate(cbs):
            if k not in self.failed:
                self._guard(k, cb.on_training_end)
        self.stack.export_optimizer_state(self.optimizer, [m.policy.optimizer for m in self.models])
        return self

    # -- rollouts: OnPolicyAlgorithm.collect_rollouts, one batched forward pass per step ----------------------
    def _sample(self, dist: tuple[torch.Tensor, ...], seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions for every seed, each from its own generator, and their log-probabilities."""
        params = tuple(t[list(seeds)] for t in dist)
        actions = self.actions.sample(params, [self.action_rngs[k] for k in seeds])
        return actions, self.actions.log_prob(params, actions)

    def _collect_rollouts(self, cbs: Sequence[BaseCallback], active: list[int]) -> list[int]:
        """One rollout of every active seed; the seeds whose rollout is whole (the others stopped)."""
        ref = self.models[0]
        running = []
        for k in active:
            m = self.models[k]
            m.policy.set_training_mode(False)
            m.rollout_buffer.reset()
            if self._guard(k, cbs[k].on_rollout_start):
                running.append(k)
        ref.policy.set_training_mode(False)
        n_steps = 0
        while n_steps < ref.n_steps and running:
            with torch.no_grad():
                dist, values = self.stack.call(_net, self._obs(self._per_row([m._last_obs for m in self.models])))
                values = values.flatten(1)
                actions, log_probs = self._sample(dist, running)
            values = values[running].unsqueeze(-1)  # each seed's [n_envs, 1], as SB3's policy gives them
            sampled = [self._shaped(k, actions[i].numpy()) for i, k in enumerate(running)]
            clipped = [self._clip(k, a) for k, a in zip(running, sampled)]
            stepped = self.step_envs(running, clipped)
            for i, k in enumerate(list(running)):
                if not self._guard(k, self._step, k, cbs[k], sampled[i], clipped[i], stepped[i], values[i], log_probs[i], n_steps):  # fmt: skip
                    running.remove(k)
            self._stepped(running)
            n_steps += 1
        if not running:
            return []
        with torch.no_grad():
            last = self.stack.call(_values, self._obs(self._per_row([m._last_obs for m in self.models])))
        done = []
        for k in running:
            m = self.models[k]

            def end(k: int = k, m: PPO = m) -> None:
                assert m._last_episode_starts is not None
                m.rollout_buffer.compute_returns_and_advantage(last_values=last[k], dones=m._last_episode_starts)
                cbs[k].update_locals({"rollout_buffer": m.rollout_buffer, "self": m})
                cbs[k].on_rollout_end()

            if self._guard(k, end):
                done.append(k)
        return done

    def _step(self, k: int, callback: BaseCallback, actions: np.ndarray, clipped_actions: np.ndarray, stepped: Any, values: torch.Tensor, log_probs: torch.Tensor, n_steps: int) -> bool:  # fmt: skip
        """Seed k's part of one step of ``collect_rollouts``, its env stepped (``stepped``: what its ``step``
        returned, or raised): its callback, its buffer. False: the callback stops the seed."""
        m = self.models[k]
        env, new_obs, rewards, dones, infos = self._took_step(k, stepped)
        callback.update_locals({
            "self": m, "env": env, "callback": callback, "rollout_buffer": m.rollout_buffer, "n_steps": n_steps,
            "actions": actions, "clipped_actions": clipped_actions, "values": values, "log_probs": log_probs,
            "new_obs": new_obs, "rewards": rewards, "dones": dones, "infos": infos,
        })  # fmt: skip
        if not callback.on_step():
            return False
        m._update_info_buffer(infos, dones)
        if self.actions.discrete:
            actions = actions.reshape(-1, 1)
        for idx in np.flatnonzero(dones).tolist():  # timeouts bootstrap with the value of their last observation
            if infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False):
                terminal_obs = m.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                with torch.no_grad():
                    terminal_value = m.policy.predict_values(terminal_obs)[0]
                rewards[idx] += m.gamma * terminal_value
        m.rollout_buffer.add(m._last_obs, actions, rewards, m._last_episode_starts, values, log_probs)
        m._last_obs = new_obs
        m._last_episode_starts = dones
        return True

    # -- the update: PPO.train batched over seeds -----------------------------------------------------------
    def _rollout_tensors(self, seeds: Sequence[int]) -> dict[str, Any]:
        """Every seed's rollout as ``[K, n_steps * n_envs, ...]`` tensors, in SB3's flattened order."""
        out: dict[str, Any] = {}
        bufs = self._per_row([m.rollout_buffer for m in self.models])
        fields = ("actions", "values", "log_probs", "advantages", "returns")
        for name in fields:  # as RolloutBuffer._get_samples: actions [N, dim] as floats (stored in the space's
            # dtype: int8 for a MultiBinary), the others flat [N]
            stacked = np.stack([RolloutBuffer.swap_and_flatten(getattr(b, name)) for b in bufs])
            if name == "actions":
                out[name] = torch.as_tensor(stacked.astype(np.float32, copy=False))
            else:
                out[name] = torch.as_tensor(stacked).flatten(1)
        if isinstance(bufs[0], DictRolloutBuffer):
            out["observations"] = {
                key: torch.as_tensor(np.stack([RolloutBuffer.swap_and_flatten(b.observations[key]) for b in bufs]))
                for key in bufs[0].observations
            }
        else:
            out["observations"] = torch.as_tensor(
                np.stack([RolloutBuffer.swap_and_flatten(b.observations) for b in bufs])
            )
        for k in range(self.rows):
            if k not in seeds:  # a stopped seed's buffer is stale (and a row of no seed's): any finite values do
                for name in fields:
                    out[name][k] = 0.0
        return out

    def _train(self, seeds: list[int]) -> None:
        ref = self.models[0]
        ref.policy.set_training_mode(True)
        for k in seeds:
            self.models[k].policy.set_training_mode(True)
        progress = [m._current_progress_remaining for m in self._per_row(self.models)]
        lrs = [float(m.lr_schedule(p)) for m, p in zip(self._per_row(self.models), progress)]
        lr = torch.tensor(lrs, dtype=torch.float64)  # each seed's schedule at its own progress
        for k in seeds:
            self.models[k].logger.record("train/learning_rate", lrs[k])
        clips = [float(ref.clip_range(p)) for p in progress]
        clip = torch.tensor(clips).unsqueeze(1)
        clips_vf = [float(ref.clip_range_vf(p)) for p in progress] if ref.clip_range_vf is not None else None
        clip_vf = torch.tensor(clips_vf).unsqueeze(1) if clips_vf is not None else None
        data = self._rollout_tensors(seeds)
        betas = [m.beta() if isinstance(m, KickstartPPO) else 0.0 for m in self._per_row(self.models)]
        beta = torch.tensor(betas) if self.teachers is not None else None
        n = data["advantages"].shape[1]
        starts = torch.arange(self.rows).unsqueeze(1) * n  # row k's samples start at k * n in the flat tensors
        mask = torch.zeros(self.rows, dtype=torch.bool)
        mask[seeds] = True
        stepping = self._stepping_rows(seeds)
        stats: dict[str, list[torch.Tensor]] = {"entropy": [], "pg": [], "value": [], "clip": [], "aux": []}
        approx_kl: list[torch.Tensor] = []
        loss = torch.zeros(self.rows)
        for _ in range(ref.n_epochs):
            approx_kl = []
            order = np.tile(np.arange(n), (self.rows, 1))
            for k in seeds:
                order[k] = self.minibatch_rngs[k].permutation(n)
            order_t = torch.as_tensor(order)
            for start in range(0, n, ref.batch_size):
                idx = (starts + order_t[:, start : start + ref.batch_size]).flatten()
                loss, parts = self._minibatch(data, idx, clip, clip_vf, beta)
                for key, value in parts.items():
                    if key == "approx_kl":
                        approx_kl.append(value)
                    else:
                        stats[key].append(value)
                self.optimizer.zero_grad()
                loss[mask].sum().backward()
                self.stack.clip_grad_norm_(ref.max_grad_norm)
                self.optimizer.step(lr, stepping)  # a stopped seed keeps its parameters and moments
            for k in seeds:
                self.models[k]._n_updates += 1
        means = {key: torch.stack(v).double().mean(0) for key, v in stats.items() if v}  # SB3: np.mean of floats
        means["approx_kl"] = torch.stack(approx_kl).mean(0)
        self._record_train(seeds, means, loss, clips, clips_vf)
        if "aux" in means:
            self._record_kickstart(seeds, means["aux"], betas)

    def _record_kickstart(self, seeds: list[int], aux: torch.Tensor, betas: list[float]) -> None:
        """What ``KickstartPPO.train`` logs and keeps besides PPO's, each seed its own."""
        for k in seeds:
            m = cast(KickstartPPO, self.models[k])
            m.logger.record("train/kickstart_kl", float(aux[k]))
            m.logger.record("train/kickstart_beta", betas[k])
            m.kickstart_log.append((m.num_timesteps, betas[k], float(aux[k])))

    def _record_train(
        self,
        seeds: list[int],
        means: dict[str, torch.Tensor],
        loss: torch.Tensor,
        clips: list[float],
        clips_vf: list[float] | None,
    ) -> None:
        """What ``PPO.train`` logs at its end, each seed to its own logger (``means``: each seed's mean of
        every logged part over the update's minibatches; ``loss``: of the last one)."""
        kl = means["approx_kl"]
        for k in seeds:
            m = self.models[k]
            buf = m.rollout_buffer
            m.logger.record("train/entropy_loss", float(means["entropy"][k]))
            m.logger.record("train/policy_gradient_loss", float(means["pg"][k]))
            m.logger.record("train/value_loss", float(means["value"][k]))
            m.logger.record("train/approx_kl", float(kl[k]))
            m.logger.record("train/clip_fraction", float(means["clip"][k]))
            m.logger.record("train/loss", float(loss[k].detach()))
            m.logger.record("train/explained_variance", explained_variance(
                RolloutBuffer.swap_and_flatten(buf.values).flatten(), RolloutBuffer.swap_and_flatten(buf.returns).flatten()
            ))  # fmt: skip
            if hasattr(m.policy, "log_std"):
                m.logger.record("train/std", torch.exp(m.policy.log_std).mean().item())
            m.logger.record("train/n_updates", m._n_updates, exclude="tensorboard")
            m.logger.record("train/clip_range", clips[k])
            if clips_vf is not None:
                m.logger.record("train/clip_range_vf", clips_vf[k])
            self._guard(k, check_finite, m)

    def _minibatch(
        self,
        data: dict[str, Any],
        idx: torch.Tensor,
        clip: torch.Tensor,
        clip_vf: torch.Tensor | None,
        beta: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Every seed's PPO loss on its minibatch (``[K]``), and its logged parts; with ``beta`` (each seed's
        kickstarting weight), plus ``beta * KL(teacher || student)`` as ``KickstartPPO``'s loss. ``idx``: the
        minibatches' samples, row by row, as positions in the rollout tensors with their first two dimensions
        (row, sample) flattened into one (one ``index_select`` a tensor: ``t[rows, idx]`` takes about twice as
        long)."""
        ref = self.models[0]
        rows = self.rows

        def take(t: torch.Tensor) -> torch.Tensor:
            return t.flatten(0, 1).index_select(0, idx).unflatten(0, (rows, -1))

        obs = data["observations"]
        obs = {key: take(v) for key, v in obs.items()} if isinstance(obs, dict) else take(obs)
        actions = self.actions.taken(take(data["actions"]))
        old_values, old_log_prob = take(data["values"]), take(data["log_probs"])
        advantages, returns = take(data["advantages"]), take(data["returns"])
        params, values = self.stack.call(_net, obs)
        values = values.flatten(1)
        log_prob, entropy = self.actions.log_prob_and_entropy(params, actions)
        if ref.normalize_advantage and advantages.shape[1] > 1:
            advantages = (advantages - advantages.mean(1, keepdim=True)) / (advantages.std(1, keepdim=True) + 1e-8)
        ratio = torch.exp(log_prob - old_log_prob)
        policy_loss_1 = advantages * ratio
        policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
        policy_loss = -torch.min(policy_loss_1, policy_loss_2).mean(1)
        clip_fraction = (torch.abs(ratio - 1) > clip).float().mean(1)
        values_pred = values if clip_vf is None else old_values + torch.clamp(values - old_values, -clip_vf, clip_vf)
        value_loss = ((returns - values_pred) ** 2).mean(1)
        entropy_loss = -torch.mean(-log_prob, 1) if entropy is None else -torch.mean(entropy, 1)
        loss = policy_loss + ref.ent_coef * entropy_loss + ref.vf_coef * value_loss
        aux = self._kickstart_kl(obs, params) if beta is not None else None
        if aux is not None and beta is not None:
            loss = loss + beta * aux
        with torch.no_grad():
            log_ratio = log_prob - old_log_prob
            approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio, 1)
        parts = {
            "entropy": entropy_loss.detach(), "pg": policy_loss.detach(), "value": value_loss.detach(),
            "clip": clip_fraction, "approx_kl": approx_kl,
        }  # fmt: skip
        if aux is not None:
            parts["aux"] = aux.detach()
        return loss, parts

    def _kickstart_kl(self, obs: Any, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Each seed's ``KL(teacher || student)`` on its minibatch, averaged (``KickstartPPO._kickstart_loss``):
        the teachers' distributions from one batched forward pass of the stacked teachers, each on its
        student's observations routed to its head for the target task."""
        assert self.teachers is not None
        models = [cast(KickstartPPO, m) for m in self._per_row(self.models)]
        with torch.no_grad():
            if isinstance(obs, dict):
                rows = [m._teacher_obs({key: v[k] for key, v in obs.items()}) for k, m in enumerate(models)]
                seen: Any = {key: torch.stack([r[key] for r in rows]) for key in rows[0]}
            else:
                seen = torch.stack([m._teacher_obs(obs[k]) for k, m in enumerate(models)])
            teacher = self.teachers.call(_net, seen)[0]
            if self.actions.discrete and teacher[0].shape[-1] > params[0].shape[-1]:  # the teacher's extra actions
                teacher = (teacher[0][..., : params[0].shape[-1]],)
        return self.actions.kl(teacher, params).mean(1)
