"""What the batched off-policy engines share (SAC's and DQN's): SB3's ``OffPolicyAlgorithm`` loop, seed by
seed in lockstep, with each seed's replay buffer sampled from its own generator.

:class:`OffPolicyBatch` restates ``learn``, ``collect_rollouts`` and ``_sample_action`` of SB3's
``OffPolicyAlgorithm`` (:data:`COPIED_LOOPS`) and the replay buffers' sampling (:data:`COPIED_SAMPLING`), for K
models of one algorithm trained side by side; a subclass gives the policy's actions for all seeds at once
(:meth:`OffPolicyBatch._policy_actions`, :meth:`OffPolicyBatch.predict`) and the batched update
(:meth:`OffPolicyBatch._train`). What a seed does in its own step (its callback, its replay buffer, its
``_on_step``: DQN's target update and exploration schedule, its logs) is its own model's code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

from rltransfer.agents.seed_batch import SeedBatch, StepEnvs, numpy_stream, torch_stream
from rltransfer.agents.stacked import StackedPolicies, adam_unsupported

COPIED_LOOPS = (
    ("learn", "2.9.2", "180dc4ca47ad67fb4902e63f80cf5e46584bb0723fbd38e80afde42f30c83f17"),
    ("collect_rollouts", "2.9.2", "2210891104720d7c738c95cdd0a6c82f1902093c4f29b52539b6d55aa3f4f83d"),
    ("_sample_action", "2.9.2", "91b38e02c778434778fc1236b6a5c13b915cc7d6f978d5060ddb84b13d0fd29f"),
)
"""Methods of ``stable_baselines3.common.off_policy_algorithm.OffPolicyAlgorithm`` that :class:`OffPolicyBatch`
restates, with the sha256 of their source at that version."""

COPIED_SAMPLING = (
    ("BaseBuffer.sample", "2.9.2", "32e77dec7d96488dfa619dc0fd82b08a315943bdd28b635ea93166c932c5f1ee"),
    ("ReplayBuffer._get_samples", "2.9.2", "ffe73ca3cb22fc4c9c85e5109b6f6732b0513e58be0132a118ab6183d2c4ad3f"),
    ("DictReplayBuffer._get_samples", "2.9.2", "0eba32ff12043e280942881f5a9d8ae5671e1c7a4363cceba3cc581847d034f9"),
)
"""The replay buffers' sampling (``stable_baselines3.common.buffers``) that :meth:`OffPolicyBatch._replay`
restates with each seed's own generator."""

SAME = ("batch_size", "gamma", "tau", "gradient_steps", "learning_starts", "target_update_interval",
        "train_freq", "n_envs", "max_grad_norm")  # fmt: skip
"""What the models of a batch share (those their algorithm has)."""


def loop_unbatchable(model: Any) -> str | None:
    """Why ``model``'s off-policy loop is not the one :class:`OffPolicyBatch` restates (None: it is)."""
    if not isinstance(model, OffPolicyAlgorithm):
        return f"{type(model).__name__} is not an off-policy algorithm"
    if model.use_sde:
        return "gSDE"
    if model.action_noise is not None:
        return "action noise"
    if cast(TrainFreq, model.train_freq).unit != TrainFrequencyUnit.STEP:
        return "its training frequency is counted in episodes"
    buffer = model.replay_buffer
    if buffer is None or type(buffer) not in (ReplayBuffer, DictReplayBuffer) or buffer.optimize_memory_usage:
        return f"its replay buffer is {type(buffer).__name__}{' (optimize_memory_usage)' * bool(getattr(buffer, 'optimize_memory_usage', False))}"  # fmt: skip
    if model._vec_normalize_env is not None:
        return "VecNormalize"
    return None


def optimizers_unbatchable(optimizers: Sequence[Any]) -> str | None:
    """Why :class:`~rltransfer.agents.stacked.StackedAdam` cannot stand in for one of ``optimizers``."""
    for opt in filter(None, optimizers):
        if type(opt) is not torch.optim.Adam:
            return f"its optimizer is {type(opt).__name__}, not Adam"
        why = next((w for w in map(adam_unsupported, opt.param_groups) if w), None)
        if why:
            return f"its Adam: {why}"
    return None


class OffPolicyBatch(SeedBatch):
    """K off-policy models of one algorithm (one per seed, built alike) trained side by side. ``seeds``: each
    model's seed (its random streams; by default each model's ``seed``)."""

    TB_LOG_NAME = "run"
    """The TensorBoard run name the algorithm's ``learn`` defaults to."""

    def __init__(self, models: Sequence[Any], seeds: Sequence[int] | None, step_envs: StepEnvs | None, unbatchable: Any):  # fmt: skip
        super().__init__(models, step_envs, unbatchable, SAME)
        ref = self.models[0]
        self.stack = StackedPolicies([m.policy for m in self.models])
        seeds = [m.seed if m.seed is not None else 0 for m in self.models] if seeds is None else list(seeds)
        self.action_rngs = [torch_stream(s, 2) for s in seeds]
        """Each seed's torch generator: its policy's samples (SAC)."""
        self.replay_rngs: list[Any] = [numpy_stream(s, 3) for s in seeds]
        """Each seed's numpy generator: its replay samples."""
        self.explore_rngs: list[Any] = [numpy_stream(s, 4) for s in seeds]
        """Each seed's numpy generator: whether it explores at a step (DQN's epsilon-greedy)."""
        self._discrete = isinstance(ref.action_space, spaces.Discrete)

    def _training_mode(self, mode: bool) -> None:
        """SB3's ``policy.set_training_mode`` (``False`` to act, ``True`` to train) of the policy whose modules
        run for all seeds (the first seed's), where it changes: at every env step and gradient step, as SB3
        calls it, it would cost a sixth of the batch's time, for policies in which it changes nothing
        (no dropout, no batch normalisation) but in the first seed's own calls."""
        policy = self.models[0].policy
        if policy.training is not mode:
            policy.set_training_mode(mode)

    # -- acting ---------------------------------------------------------------------------------------------
    def predict(self, observations: Mapping[int, Any]) -> dict[int, np.ndarray]:
        """Each seed's deterministic actions for its observations (``{seed index: observations}``), as its
        model's ``predict(obs, deterministic=True)`` gives them, from one batched forward pass."""
        raise NotImplementedError

    def _policy_actions(self, seeds: Sequence[int]) -> dict[int, np.ndarray]:
        """What each of ``seeds``' ``predict(self._last_obs, deterministic=False)`` gives in ``_sample_action``
        (after ``learning_starts``), from one batched forward pass where one is needed."""
        raise NotImplementedError

    def _sample_actions(self, running: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``_sample_action`` of each running seed: its action and what its buffer stores (a Box action scaled
        to [-1, 1]). Before ``learning_starts``, its action space's random actions; after, its policy's."""
        ref = self.models[0]
        learned = [k for k in running if self.models[k].num_timesteps >= ref.learning_starts]
        sampled = self._policy_actions(learned) if learned else {}
        out = {}
        for k in running:
            m = self.models[k]
            unscaled = sampled[k] if k in sampled else np.array([m.action_space.sample() for _ in range(m.n_envs)])
            if self._discrete:
                out[k] = (unscaled, unscaled)
                continue
            scaled = m.policy.scale_action(unscaled)
            out[k] = (m.policy.unscale_action(scaled), scaled)
        return out

    def _current_obs(self) -> Any:
        """Every row's last observations, ``[rows, n_envs, ...]``."""
        return self._obs(self._per_row([m._last_obs for m in self.models]))

    # -- learn: OffPolicyAlgorithm.learn, seed by seed in lockstep ---------------------------------------------
    def learn(
        self,
        total_timesteps: int | Sequence[int],
        callbacks: Sequence[Any] | None = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool | Sequence[bool] = True,
        progress_bar: bool = False,
    ) -> OffPolicyBatch:
        """Each model learns as its ``learn(total_timesteps, callbacks[k], log_interval, reset_num_timesteps)``
        would (each argument one for all seeds, or one per seed: a seed whose first steps went elsewhere learns
        the rest of its budget, from its own step count). A seed that raises is recorded in :attr:`failed` and
        left out; the others go on."""
        name = tb_log_name if tb_log_name is not None else self.TB_LOG_NAME
        totals, cbs = self._setup(total_timesteps, callbacks, reset_num_timesteps, name, progress_bar)
        active = [k for k, cb in enumerate(cbs) if self._guard(k, cb.on_training_start, {}, {})]
        self._stepped(active)
        active = [k for k in active if self.models[k].num_timesteps < totals[k]]
        ref = self.models[0]
        while active:
            collected = self._collect_rollouts(cbs, active, log_interval)
            due = [k for k in collected if self.models[k].num_timesteps > max(0, ref.learning_starts)]
            steps = ref.gradient_steps if ref.gradient_steps >= 0 else ref.train_freq.frequency * ref.n_envs
            if due and steps > 0:
                self._train(due, steps)
            active = [k for k in collected if k not in self.failed and self.models[k].num_timesteps < totals[k]]
        for k, cb in enumerate(cbs):
            if k not in self.failed:
                self._guard(k, cb.on_training_end)
        self._export_optimizers()
        return self

    # -- rollouts: OffPolicyAlgorithm.collect_rollouts, one batched forward pass per step -----------------------
    def _collect_rollouts(self, cbs: Sequence[BaseCallback], active: list[int], log_interval: int | None) -> list[int]:
        """``train_freq`` steps of every active seed; the seeds that go on (the others' callbacks stopped them)."""
        running = [k for k in active if self._guard(k, cbs[k].on_rollout_start)]
        self._training_mode(False)
        n_steps = 0
        while n_steps < self.models[0].train_freq.frequency and running:
            actions = self._sample_actions(running)
            stepped = self.step_envs(running, [actions[k][0] for k in running])
            for i, k in enumerate(list(running)):
                if not self._guard(k, self._step, k, cbs[k], *actions[k], stepped[i], log_interval, n_steps):
                    running.remove(k)
            self._stepped(running)
            n_steps += 1
        return [k for k in running if self._guard(k, cbs[k].on_rollout_end)]

    def _step(self, k: int, callback: BaseCallback, actions: np.ndarray, buffer_actions: np.ndarray, stepped: Any, log_interval: int | None, n_steps: int) -> bool:  # fmt: skip
        """Seed k's part of one step of ``collect_rollouts``, its env stepped (``stepped``: what its ``step``
        returned, or raised): its callback, its replay buffer, its logs. False: the callback stops the seed."""
        m = self.models[k]
        env, new_obs, rewards, dones, infos = self._took_step(k, stepped)
        callback.update_locals({
            "self": m, "env": env, "callback": callback, "train_freq": m.train_freq, "replay_buffer": m.replay_buffer,
            "action_noise": None, "learning_starts": m.learning_starts, "log_interval": log_interval,
            "num_collected_steps": n_steps + 1, "actions": actions, "buffer_actions": buffer_actions,
            "new_obs": new_obs, "rewards": rewards, "dones": dones, "infos": infos,
        })  # fmt: skip
        if not callback.on_step():
            return False
        m._update_info_buffer(infos, dones)
        assert m.replay_buffer is not None
        m._store_transition(m.replay_buffer, buffer_actions, new_obs, rewards, dones, infos)
        m._update_current_progress_remaining(m.num_timesteps, m._total_timesteps)
        m._on_step()
        for done in dones:
            if done:
                m._episode_num += 1
                if log_interval is not None and m._episode_num % log_interval == 0:
                    m.dump_logs()
        return True

    # -- the update -------------------------------------------------------------------------------------------
    def _replay(self, seeds: Sequence[int], batch_size: int) -> dict[str, Any]:
        """A replay sample of every seed in ``seeds`` (``[rows, batch, ...]`` tensors), each drawn from its own
        buffer with its own generator as SB3's ``sample`` draws it (its transitions, then their envs); the other
        rows repeat the first seed's sample (they draw nothing)."""
        parts: dict[int, dict[str, Any]] = {}
        for k in seeds:
            buf = self.models[k].replay_buffer
            assert buf is not None
            rng = self.replay_rngs[k]
            inds = rng.integers(0, buf.buffer_size if buf.full else buf.pos, size=batch_size)
            envs = rng.integers(0, buf.n_envs, size=batch_size)
            if isinstance(buf, DictReplayBuffer):
                obs: Any = {key: o[inds, envs, :] for key, o in buf.observations.items()}
                next_obs: Any = {key: o[inds, envs, :] for key, o in buf.next_observations.items()}
            else:
                obs, next_obs = buf.observations[inds, envs, :], buf.next_observations[inds, envs, :]
            parts[k] = {
                "observations": obs,
                "actions": buf.actions[inds, envs],
                "next_observations": next_obs,
                "dones": (buf.dones[inds, envs] * (1 - buf.timeouts[inds, envs])).reshape(-1, 1),
                "rewards": buf.rewards[inds, envs].reshape(-1, 1),
            }
        rows = [parts.get(k, parts[seeds[0]]) for k in range(self.rows)]
        return {name: self._obs([r[name] for r in rows]) for name in rows[0]}

    def _learning_rates(self, seeds: Sequence[int]) -> torch.Tensor:
        """Each row's learning rate, its seed's schedule at its own progress (logged for ``seeds``)."""
        rows = self._per_row(self.models)
        lrs = [float(m.lr_schedule(m._current_progress_remaining)) for m in rows]
        for k in seeds:
            self.models[k].logger.record("train/learning_rate", lrs[k])
        return torch.tensor(lrs, dtype=torch.float64)

    def _train(self, seeds: list[int], gradient_steps: int) -> None:
        """``gradient_steps`` updates of every seed in ``seeds``, as its algorithm's ``train``."""
        raise NotImplementedError

    def _export_optimizers(self) -> None:
        """Each model's own optimizers given its seed's row of the batch's state."""
        raise NotImplementedError
