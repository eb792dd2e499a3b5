"""Evaluating agents on a target task: parallel episodes with fixed reset seeds, at fixed checkpoints.

Every strategy and seed of an experiment is evaluated on the same list of reset seeds, so
differences between them are not evaluation luck (docs/evaluation.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

from rltransfer.agents.updates import NonFiniteError, non_finite_parameter
from rltransfer.envs.family import MAX_EPISODE_STEPS
from rltransfer.envs.multitask import pausable
from rltransfer.errors import EndlessEpisode

EVAL_SEED = 1_000_003  # reset seeds of evaluation episodes: EVAL_SEED + i, for every run
MAX_PARALLEL = 32  # evaluation episodes stepped together in one vector env


@contextmanager
def sampling_rng(*seed: int) -> Iterator[None]:
    """Actions sampled inside are drawn from torch's generator seeded with ``seed`` (a sequence of
    ints), and the generator is restored on exit: a stochastic evaluation is reproducible and does
    not change what training draws next, so a run trains the same whether or how often it is evaluated."""
    with torch.random.fork_rng():
        torch.manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1, np.uint64)[0] >> 1))
        yield


def endless(steps: int) -> EndlessEpisode:
    return EndlessEpisode(
        f"an evaluation episode did not end in {steps:,} steps: rltransfer evaluates whole episodes, and this "
        "env's may never end; give it a time limit (wrap it in gymnasium.wrappers.TimeLimit(env, "
        "max_episode_steps=...) in the family's build, or register it with max_episode_steps)"
    )


class EpisodeLimit(VecEnvWrapper):
    """Raises :class:`EndlessEpisode` when an episode of ``venv`` runs past ``max_steps`` steps (default
    :data:`MAX_EPISODE_STEPS`): for evaluations that SB3's ``evaluate_policy`` runs, which would wait forever on
    an env whose episodes never end. Changes nothing an env that ends its episodes does."""

    def __init__(self, venv: VecEnv, max_steps: int | None = None):
        super().__init__(venv)
        self.max_steps = MAX_EPISODE_STEPS if max_steps is None else max_steps
        self._steps = np.zeros(venv.num_envs, dtype=np.int64)

    def reset(self) -> Any:
        self._steps[:] = 0
        return self.venv.reset()

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self._steps += 1
        if (self._steps[~dones] >= self.max_steps).any():
            raise endless(self.max_steps)
        self._steps[dones] = 0
        return obs, rewards, dones, infos


class Episodes:
    """Episodes on a vector env, stepped by the caller: ``episodes`` of them, episode ``i`` reset with seed
    ``base_seed + i``; the env's ``num_envs`` episodes run side by side, later waves take the next seeds.
    Act on :attr:`obs` with :meth:`step` until :attr:`done`; then :attr:`returns` are the undiscounted returns."""

    def __init__(self, env: VecEnv, episodes: int, base_seed: int, max_steps: int | None = None):
        self.env, self.episodes, self.base_seed = env, episodes, base_seed
        self.max_steps = MAX_EPISODE_STEPS if max_steps is None else max_steps
        self._pausable = pausable(env)
        """Where the envs step one by one: an env whose episode of the wave has ended is paused until the next
        wave (its steps would be thrown away). The others' steps, and the policy's inputs, are as before."""
        self._returns: list[float] = []
        self._start = 0
        if not self.done:
            self._wave()

    def _wave(self) -> None:
        n = self.env.num_envs
        self._count = min(n, self.episodes - self._start)
        self.env.seed(self.base_seed + self._start)
        self.obs = self.env.reset()
        self._total = np.zeros(n)
        self._alive = np.zeros(n, dtype=bool)
        self._alive[: self._count] = True
        self._steps = 0
        if self._pausable is not None and self._count < n:
            self._pausable.pause(range(self._count, n))

    @property
    def done(self) -> bool:
        return self._start >= self.episodes

    def step(self, actions: np.ndarray) -> None:
        self.stepped(self.env.step(actions))

    def stepped(self, result: tuple[Any, np.ndarray, np.ndarray, Any]) -> None:
        """:meth:`step` from what the env's ``step`` returned (the env stepped with others)."""
        self.obs, rewards, dones, _ = result
        self._total += np.where(self._alive, rewards, 0.0)
        ended = self._alive & dones
        self._alive &= ~dones
        self._steps += 1
        if self._alive.any() and self._steps >= self.max_steps:
            raise endless(self.max_steps)
        if not self._alive.any():
            self._returns.extend(self._total[: self._count].tolist())
            self._start += self.env.num_envs
            if not self.done:
                self._wave()
        elif self._pausable is not None and ended.any():
            self._pausable.pause(np.flatnonzero(ended).tolist())

    @property
    def returns(self) -> np.ndarray:
        return np.asarray(self._returns)


def run_episodes(
    env: VecEnv, act: Callable[[Any], np.ndarray], episodes: int, base_seed: int, max_steps: int | None = None
) -> np.ndarray:
    """Undiscounted return of ``episodes`` episodes, episode ``i`` reset with seed ``base_seed + i``.

    The vector env's ``num_envs`` episodes run side by side; later waves take the next seeds.
    """
    run = Episodes(env, episodes, base_seed, max_steps)
    while not run.done:
        run.step(act(run.obs))
    return run.returns


def observation_statistics(model: BaseAlgorithm) -> list[Any]:
    """The running statistics a ``VecNormalize`` over ``model``'s env normalises observations with (one, or
    one per key of a dict observation); none where it has no such wrapper."""
    env = model.get_env()
    if not isinstance(env, VecNormalize):
        return []
    rms = env.obs_rms
    return list(rms.values()) if isinstance(rms, dict) else [rms]


def policy_actor(model: BaseAlgorithm, deterministic: bool) -> Callable[[Any], np.ndarray]:
    """``obs -> actions`` for evaluation: ``model.predict`` without its per-call overhead
    (training-mode switches, shape checks), same actions."""
    from gymnasium import spaces

    policy = model.policy
    policy.set_training_mode(False)
    space = model.action_space
    shape: tuple[int, ...] = space.shape or ()

    def act(obs: Any) -> np.ndarray:
        with torch.no_grad():
            tensor = {k: torch.as_tensor(v) for k, v in obs.items()} if isinstance(obs, dict) else torch.as_tensor(obs)
            actions = policy._predict(tensor, deterministic=deterministic).cpu().numpy()
        actions = actions.reshape((-1, *shape))  # as predict() does: a Box of 2-d actions in the space's shape
        if isinstance(space, spaces.Box) and policy.squash_output:  # as predict(): SAC's squashed ones to the bounds
            actions = policy.unscale_action(actions)
        elif isinstance(space, spaces.Box):  # as predict() does for an unsquashed Gaussian
            actions = np.clip(actions, space.low, space.high)
        return actions

    return act


class Evaluator(BaseCallback):
    """Evaluates the agent at target step 0, every ``every`` steps, and at the budget; stops there.

    Scores go to TensorBoard (``<tag>/return``, ``<tag>/score``; ``tag``: ``eval/<target>`` in a grid, so
    that each target's runs share their charts with no other target's) at their target step and to
    :attr:`curve`. Training stops once the budget's evaluation is done, so every run ends at
    exactly the same nominal step. Parameters that become NaN or infinite raise
    :class:`NonFiniteError` naming the step.

    :param make_env: builds the evaluation vector env (separate from the training env).
    :param episodes: episodes per evaluation, reset with seeds ``EVAL_SEED + i``.
    :param deterministic: evaluate the policy's mode; otherwise sample its actions, from a generator
        seeded by ``(EVAL_SEED, seed, step)`` and apart from training's (:func:`sampling_rng`). A
        deterministic evaluation is a function of the policy's parameters and observation statistics (the
        episodes' reset seeds are fixed), so where neither changed since the last one (an agent that does
        not train, or a checkpoint that falls before the next update: PPO's rollout of 16,384 steps spans
        evaluations 10,000 steps apart) the measurement is repeated instead of run again (:meth:`repeat`).
    :param normalise: return -> normalised score.
    :param seed: the run's seed (stochastic evaluation only: its action samples).
    """

    def __init__(
        self,
        make_env: Callable[[], VecEnv],
        every: int,
        budget: int,
        episodes: int,
        deterministic: bool,
        normalise: Callable[[float], float],
        seed: int = 0,
        tag: str = "eval",
    ):
        super().__init__()
        self.seed = seed
        self.tag = tag
        self.make_env = make_env
        self.checkpoints = sorted({*range(0, budget, every), budget})
        self.episodes = episodes
        self.deterministic = deterministic
        self.normalise = normalise
        self.curve: dict[str, list[float]] = {"step": [], "return": [], "score": [], "return_std": []}
        self.eval_seconds = 0.0
        self._next = 0
        self._env: VecEnv | None = None
        self._measured: tuple[list[np.ndarray], tuple[float, float, float]] | None = None
        """What the last measurement scored (:meth:`_scored_state`) and what it measured: mean, std, score."""
        self.defer = False
        """Leave each evaluation in :attr:`pending` for :func:`~rltransfer.evaluation_together.evaluate_together` (the batched engine)."""
        self.pending: list[tuple[int, list[np.ndarray]]] = []
        """The deferred evaluations, oldest first: each one's step and the state it scores (:meth:`_scored_state`
        when it fell due)."""

    def _eval_env(self, model: BaseAlgorithm) -> VecEnv:
        if self._env is None:
            self._env = self.make_env()
        train_env = model.get_env()
        if isinstance(self._env, VecNormalize) and isinstance(train_env, VecNormalize):
            self._env.obs_rms = train_env.obs_rms  # the agent's current observation statistics
        return self._env

    def evaluate(self, model: BaseAlgorithm, step: int) -> None:
        """Score ``model`` at target step ``step`` (logged to its TensorBoard); deferred: left in :attr:`pending`."""
        if self.defer:
            self.pending.append((step, self._scored_state(model)))
            return
        if self.repeat(model, step):
            return
        start = time.perf_counter()
        env = self._eval_env(model)
        with sampling_rng(EVAL_SEED, self.seed, step):
            returns = run_episodes(env, policy_actor(model, self.deterministic), self.episodes, EVAL_SEED)
        self.record_returns(model, step, returns, time.perf_counter() - start)

    def record_returns(
        self,
        model: BaseAlgorithm,
        step: int,
        returns: np.ndarray,
        seconds: float,
        state: list[np.ndarray] | None = None,
    ) -> None:
        """The evaluation of ``model`` at ``step``: its episodes' ``returns``, which took ``seconds``; ``state``:
        what it scored, where not the model's state now (a deferred evaluation's)."""
        mean = float(returns.mean())
        measured = (mean, float(returns.std()), float(self.normalise(mean)))
        self._record(model, step, *measured)
        if self.deterministic:
            self._measured = (self._scored_state(model) if state is None else state, measured)
        self.eval_seconds += seconds

    def repeat(self, model: BaseAlgorithm, step: int, scored: list[np.ndarray] | None = None) -> bool:
        """Record at ``step`` the last measurement again where it would come out the same (a deterministic
        evaluation of the same parameters and observation statistics: ``scored``, or the model's now); False:
        it must be run."""
        if self._measured is None:
            return False
        state, measured = self._measured
        now = self._scored_state(model) if scored is None else scored
        if len(now) != len(state) or not all(np.array_equal(a, b) for a, b in zip(now, state)):
            return False
        self._record(model, step, *measured)
        return True

    @staticmethod
    def _scored_state(model: BaseAlgorithm) -> list[np.ndarray]:
        """What a deterministic evaluation of ``model`` depends on besides the reset seeds: every parameter
        and buffer of its policy (by value) and, where its env normalises observations, their running
        statistics."""
        tensors = [*model.policy.parameters(), *model.policy.buffers()]
        state = [t.detach().cpu().numpy().copy() for t in tensors]
        for one in observation_statistics(model):
            state += [np.array(one.mean, copy=True), np.array(one.var, copy=True), np.array(one.count)]
        return state

    def start_at(self, model: BaseAlgorithm, step: int) -> None:
        """The run's agent first exists at target step ``step`` (its first ``step`` steps went to a
        probe of source heads): score it there, as its first point (P(0)), and skip the checkpoints up
        to it."""
        self.evaluate(model, step)
        while self._next < len(self.checkpoints) and self.checkpoints[self._next] <= step:
            self._next += 1

    def _record(self, model: BaseAlgorithm, step: int, mean: float, std: float, score: float) -> None:
        """One evaluation: into the curve, and to TensorBoard at its target step."""
        self.curve["step"].append(step)
        self.curve["return"].append(mean)
        self.curve["return_std"].append(std)
        self.curve["score"].append(score)
        logger = getattr(model, "_logger", None)  # none before a model's first learn() or set_logger()
        for fmt in logger.output_formats if logger else ():
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_scalar(f"{self.tag}/return", mean, step)
                fmt.writer.add_scalar(f"{self.tag}/score", score, step)
                fmt.writer.flush()

    def _evaluate_due(self) -> bool:
        while self._next < len(self.checkpoints) and self.num_timesteps >= self.checkpoints[self._next]:
            self._check_finite()
            self.evaluate(self.model, self.checkpoints[self._next])
            self._next += 1
        return self._next < len(self.checkpoints)

    def _on_training_start(self) -> None:
        self._evaluate_due()

    def _on_step(self) -> bool:
        return self._evaluate_due()

    def _check_finite(self) -> None:
        """Stop the run before it scores an agent with a non-finite parameter (rltransfer's algorithms stop
        at the update that makes one; this catches any other's at its next checkpoint)."""
        name = non_finite_parameter(self.model.policy)
        if name is not None:
            raise NonFiniteError(f"non-finite parameter '{name}' at step {self.num_timesteps}")

    def _on_training_end(self) -> None:
        self.close()

    def evaluate_without_training(self, model: BaseAlgorithm, budget: int) -> None:
        """For agents that never train (zero_shot): the same checkpoints, the same agent."""
        self.model = model
        for step in self.checkpoints[self._next :]:
            self.evaluate(model, step)  # deterministic, a fixed policy is measured once and repeated
        self._next = len(self.checkpoints)
        self.close()

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def protocol(every: int, episodes: int, deterministic: bool, budget: int) -> dict[str, Any]:
    return {
        "every": every,
        "episodes": episodes,
        "deterministic": deterministic,
        "budget": budget,
        "eval_seed": EVAL_SEED,
    }
