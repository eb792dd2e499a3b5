"""What the batched engines share: K models of one algorithm, one per seed, trained side by side.

A batched engine (:class:`~rltransfer.agents.batched_ppo.BatchedPPO`,
:class:`~rltransfer.agents.batched_sac.BatchedSAC`) takes K models built the usual way, each with its env,
seed, callbacks and logger, and runs their policies as one stacked model
(:class:`~rltransfer.agents.stacked.StackedPolicies`). What it shares is here: how the seeds' envs step
(:data:`StepEnvs`), how a seed that fails is recorded and left out while the others go on
(:class:`SeedFailed`), and the bookkeeping of the stacked rows.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

StepEnvs = Callable[[Sequence[int], Sequence[np.ndarray]], list[Any]]
"""``(indices, actions) -> results``: the envs ``indices`` of a batch's seeds each stepped with its actions,
each result what its env's ``step`` returns, or the exception it raised."""

STREAM = 0x5EED_BA7C
"""Mixed into a seed's random streams, so that they are apart from the streams SB3 seeds with it."""


def one_by_one(envs: Sequence[Any]) -> StepEnvs:
    """:data:`StepEnvs` that steps each env on its own."""

    def step(which: Sequence[int], actions: Sequence[np.ndarray]) -> list[Any]:
        out = []
        for i, a in zip(which, actions):
            try:
                out.append(envs[i].step(a))
            except Exception as err:  # the seed's, raised again in its own step
                out.append(err)
        return out

    return step


def torch_stream(seed: int, stream: int) -> torch.Generator:
    """Seed ``seed``'s torch generator number ``stream`` (apart from SB3's and from its other streams)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, STREAM, stream]).generate_state(1)[0]))


def numpy_stream(seed: int, stream: int) -> np.random.Generator:
    """Seed ``seed``'s numpy generator number ``stream``."""
    return np.random.default_rng([seed, STREAM, stream])


class SeedFailed:
    """A seed that failed in the batch: what was raised, and its traceback (the run records both)."""

    def __init__(self, err: BaseException):
        self.error = err
        self.traceback = traceback.format_exc(limit=8)


class SeedBatch:
    """The models of a batch, their failures, how their envs step, and what runs after every step.
    Subclasses set :attr:`stack`."""

    stack: Any  # StackedPolicies

    def __init__(
        self,
        models: Sequence[Any],
        step_envs: StepEnvs | None = None,
        unbatchable: Callable[[Any], str | None] | None = None,
        same: Sequence[str] = (),
    ):
        self.models = list(models)
        for m in self.models:
            why = unbatchable(m) if unbatchable is not None else None
            if why:
                raise ValueError(f"cannot batch this model: {why}")
        ref = self.models[0]
        for m in self.models[1:]:
            diff = [a for a in same if hasattr(ref, a) and getattr(m, a) != getattr(ref, a)]
            diff += self._differences(m, ref)
            if diff:
                raise ValueError(f"the models of a batch differ in {', '.join(diff)}")
        self.failed: dict[int, SeedFailed] = {}
        self.step_envs = step_envs if step_envs is not None else one_by_one([m.env for m in self.models])
        """Steps the seeds' envs (:data:`StepEnvs`); by default one by one. rltransfer's grid passes
        ``rltransfer.envs.multitask.StepTogether``, which steps the physics of a family's vector builds as one."""
        self.after_step: Callable[[], None] | None = None
        """Called after every step of the seeds (and once they start training), when every seed's callbacks
        have seen it: where evaluations the callbacks deferred run together (``predict``); a seed whose
        evaluation raises is failed there (:meth:`fail`)."""

    def _differences(self, m: Any, ref: Any) -> list[str]:
        """What else the models of a batch must share (a subclass's own), beyond the ``same`` attributes."""
        return []

    @property
    def k(self) -> int:
        return len(self.models)

    @property
    def rows(self) -> int:
        """The stacked tensors' rows: the seeds, and rows that are no seed's where there are too few seeds
        (:class:`~rltransfer.agents.stacked.StackedPolicies`); they act on seed 0's data, and never count."""
        return int(self.stack.rows)

    def _per_row(self, items: Sequence[Any]) -> list[Any]:
        return list(items) + [items[0]] * (self.rows - len(items))

    def _stepping_rows(self, seeds: Sequence[int]) -> list[int] | None:
        """The rows an optimizer steps when ``seeds`` train: None (every row) where every seed does."""
        if len(seeds) == self.k:
            return None
        return [*seeds, *range(self.k, self.rows)]

    def _stepped(self, running: list[int] | None = None) -> None:
        """What runs after every step of the seeds (:attr:`after_step`); the seeds it failed then leave
        ``running`` (a step's list of the seeds still stepping)."""
        if self.after_step is not None:
            self.after_step()
        if running is not None:
            running[:] = [k for k in running if k not in self.failed]

    def fail(self, k: int, err: BaseException) -> None:
        """Seed k failed outside the engine (an evaluation of its deferred checkpoint raised), from its next
        step on left out as a seed that raised in it is. Call it where ``err`` is being handled (its traceback
        is recorded). An earlier failure of the seed is replaced: a deferred checkpoint fell due before
        anything the engine has run since, so its error is the one the run alone would have met first."""
        self.failed[k] = SeedFailed(err)

    def _guard(self, k: int, fn: Callable[..., Any], *args: Any) -> bool:
        """``fn(*args)`` for seed k, true where it neither raised nor returned False; an exception fails the
        seed (recorded), not the batch."""
        try:
            return fn(*args) is not False
        except Exception as err:  # recorded as the seed's failed run
            self.failed[k] = SeedFailed(err)
            return False

    def _took_step(self, k: int, stepped: Any) -> tuple[Any, Any, Any, Any, Any]:
        """Seed k's env step as its ``collect_rollouts`` takes it (``stepped``: what its ``step`` returned, or
        the exception it raised, raised again here as the seed's): its model's step count moved on; the model's
        env and the step's observations, rewards, ends and infos."""
        if isinstance(stepped, Exception):
            raise stepped
        m = self.models[k]
        env = m.env
        assert env is not None
        m.num_timesteps += env.num_envs
        new_obs, rewards, dones, infos = stepped
        return env, new_obs, rewards, dones, infos

    def _obs(self, observations: Sequence[Any]) -> Any:
        """The seeds' observations (arrays, or dicts of arrays) as ``[rows, ...]`` tensors."""
        first = observations[0]
        if isinstance(first, dict):
            return {key: torch.as_tensor(np.stack([o[key] for o in observations])) for key in first}
        return torch.as_tensor(np.stack(observations))

    def _shaped(self, k: int, actions: np.ndarray) -> np.ndarray:
        """Seed k's actions in its action space's shape, as SB3's policies give them (a Box of 2-d actions:
        the distribution's flat ones reshaped)."""
        return actions.reshape((-1, *self.models[k].action_space.shape))

    def _clip(self, k: int, actions: np.ndarray) -> np.ndarray:
        space = self.models[k].action_space
        return np.clip(actions, space.low, space.high) if isinstance(space, spaces.Box) else actions

    def _setup(
        self,
        total_timesteps: int | Sequence[int],
        callbacks: Sequence[Any] | None,
        reset_num_timesteps: bool | Sequence[bool],
        tb_log_name: str,
        progress_bar: bool,
    ) -> tuple[list[int], list[Any]]:
        """Each model's ``_setup_learn`` (each argument one for all seeds, or one per seed): their totals and
        callbacks."""
        callbacks = list(callbacks) if callbacks is not None else [None] * self.k
        steps = [total_timesteps] * self.k if isinstance(total_timesteps, int) else list(total_timesteps)
        resets = [reset_num_timesteps] * self.k if isinstance(reset_num_timesteps, bool) else list(reset_num_timesteps)
        totals, cbs = [], []
        for m, cb, n, reset in zip(self.models, callbacks, steps, resets):
            total, callback = m._setup_learn(n, cb, reset, tb_log_name, progress_bar)
            totals.append(total)
            cbs.append(callback)
        return totals, cbs
