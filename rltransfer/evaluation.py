"""Evaluating agents on a target task: parallel episodes with fixed reset seeds, random baselines.

Every strategy and seed of an experiment is evaluated on the same list of reset seeds, so
differences between them are not evaluation luck (docs/evaluation.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecNormalize

from rltransfer.agents.transfer_ppo import NonFiniteError
from rltransfer.atomic import atomic_write_bytes
from rltransfer.envs import Family, Task
from rltransfer.envs.checks import time_limit
from rltransfer.envs.family import MAX_EPISODE_STEPS
from rltransfer.envs.multitask import StepTogether, pausable
from rltransfer.errors import EndlessEpisode

EVAL_SEED = 1_000_003  # reset seeds of evaluation episodes: EVAL_SEED + i, for every run
RANDOM_SEED = 2_000_003  # reset seeds of the random-policy baseline
MAX_PARALLEL = 32  # evaluation episodes stepped together in one vector env


@contextmanager
def sampling_rng(*seed: int) -> Iterator[None]:
    """Actions sampled inside are drawn from torch's generator seeded with ``seed`` (a sequence of
    ints), and the generator is restored on exit: a stochastic evaluation is reproducible and does
    not change what training draws next, so a run trains the same whether or how often it is evaluated."""
    import torch

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


def evaluate_together(
    due: Sequence[tuple[int, Evaluator, BaseAlgorithm]],
    act: Callable[[dict[int, Any]], dict[int, np.ndarray]],
    failed: Callable[[int, Exception], None] | None = None,
) -> None:
    """The deferred evaluations (:attr:`Evaluator.pending`) of several runs at once: each run's episodes on its
    own evaluation env, on the same reset seeds as alone, every step acted on by one call of ``act`` for all
    (``{key: observations} -> {key: actions}``; the batched engine's one forward pass for all its seeds).

    Each evaluation scores the agent as it was when it fell due (its parameters and observation statistics,
    kept then): its run's model holds them again while its wave runs, and its own after. So runs whose
    checkpoints fall at different steps of a batch (each seed's probe of source heads takes its own number
    of steps) are still measured together, later, with the numbers they would have had then.

    A run whose evaluation raises (its env, an episode that never ends) is handed to ``failed`` with the error,
    while it is being handled (its traceback the current one), and its later evaluations are dropped, as the
    run alone would have stopped there; the others' go on. Without ``failed``, the error is raised."""
    failures = _Failures(failed)
    while any(ev.pending for _, ev, _ in due):
        wave = []
        for k, ev, model in due:
            if ev.pending:
                step, state = ev.pending.pop(0)
                if failures.attempt(k, ev, partial(ev.repeat, model, step, state)) is False:
                    wave.append((k, ev, model, step, state))
        start = time.perf_counter()
        with _as_scored([(model, state) for _, _, model, _, state in wave]):
            runs = _episodes_together({k: (ev, model) for k, ev, model, _, _ in wave}, act, failures)
        seconds = (time.perf_counter() - start) / max(len(wave), 1)
        for k, ev, model, step, state in wave:
            if k in runs:
                failures.attempt(k, ev, partial(ev.record_returns, model, step, runs[k].returns, seconds, state))


class _Failures:
    """The runs of :func:`evaluate_together` whose evaluation raised (:attr:`dead`), each handed to ``failed``
    (None: raised)."""

    def __init__(self, failed: Callable[[int, Exception], None] | None):
        self.failed = failed
        self.dead: set[int] = set()

    def attempt(self, k: int, ev: Evaluator, fn: Callable[[], Any]) -> Any:
        """``fn()`` for run ``k``; where it raises, the run fails (None)."""
        try:
            return fn()
        except Exception as err:  # the run's own error: it fails, the others go on
            if self.failed is None:
                raise
            ev.pending.clear()
            self.dead.add(k)
            self.failed(k, err)
            return None


def _episodes_together(
    runs: dict[int, tuple[Evaluator, BaseAlgorithm]],
    act: Callable[[dict[int, Any]], dict[int, np.ndarray]],
    failures: _Failures,
) -> dict[int, Episodes]:
    """One evaluation of each run, side by side, to its last episode: the runs' episodes (none of a run that
    failed)."""
    episodes: dict[int, Episodes] = {}
    for k, (ev, model) in runs.items():
        run = failures.attempt(k, ev, partial(_episodes, ev, model))
        if run is not None:
            episodes[k] = run
    keys = list(episodes)
    # a family's vector builds: one physics step, and (an evaluation takes only observations, rewards and ends)
    # one finish for all
    step_envs = StepTogether([episodes[k].env for k in keys], outcomes_only=True)
    while live := [i for i, k in enumerate(keys) if k not in failures.dead and not episodes[k].done]:
        actions = act({keys[i]: episodes[keys[i]].obs for i in live})
        for i, result in zip(live, step_envs(live, [actions[keys[i]] for i in live])):
            failures.attempt(keys[i], runs[keys[i]][0], partial(_took, episodes[keys[i]], result))
    return {k: run for k, run in episodes.items() if k not in failures.dead}


def _episodes(ev: Evaluator, model: BaseAlgorithm) -> Episodes:
    """One evaluation of ``model`` on ``ev``'s env, to be stepped."""
    return Episodes(ev._eval_env(model), ev.episodes, EVAL_SEED)


def _took(run: Episodes, result: tuple[Any, np.ndarray, np.ndarray, Any] | Exception) -> None:
    """``run``'s env stepped with others': what its ``step`` returned, or the error it raised, raised again."""
    if isinstance(result, Exception):
        raise result
    run.stepped(result)


def _observation_statistics(model: BaseAlgorithm) -> list[Any]:
    """The running statistics a ``VecNormalize`` over ``model``'s env normalises observations with (one, or
    one per key of a dict observation); none where it has no such wrapper."""
    env = model.get_env()
    if not isinstance(env, VecNormalize):
        return []
    rms = env.obs_rms
    return list(rms.values()) if isinstance(rms, dict) else [rms]


@contextmanager
def _as_scored(models: Sequence[tuple[BaseAlgorithm, list[np.ndarray]]]) -> Iterator[None]:
    """Each model's policy parameters and observation statistics set, for the duration, to ``state`` (what
    :meth:`Evaluator._scored_state` kept), and its own restored after, bit for bit. The batched engines'
    parameters are views of their stacked rows, so their forward pass sees the state too."""
    saved = []
    with torch.no_grad():
        for model, state in models:
            params = list(model.policy.parameters())
            stats = _observation_statistics(model)
            saved.append(
                (params, [p.detach().clone() for p in params], stats, [(s.mean, s.var, s.count) for s in stats])
            )
            for p, value in zip(params, state):
                p.copy_(torch.from_numpy(value))
            rest = state[len(params) + len(list(model.policy.buffers())) :]
            for s, (mean, var, count) in zip(stats, zip(rest[0::3], rest[1::3], rest[2::3])):
                s.mean, s.var, s.count = mean.copy(), var.copy(), count.item()
    try:
        yield
    finally:
        with torch.no_grad():
            for params, values, stats, own in saved:
                for p, kept in zip(params, values):
                    p.copy_(kept)
                for s, (mean, var, count) in zip(stats, own):
                    s.mean, s.var, s.count = mean, var, count


def policy_actor(model: BaseAlgorithm, deterministic: bool) -> Callable[[Any], np.ndarray]:
    """``obs -> actions`` for evaluation: ``model.predict`` without its per-call overhead
    (training-mode switches, shape checks), same actions."""
    import torch
    from gymnasium import spaces

    policy = model.policy
    policy.set_training_mode(False)
    box = isinstance(model.action_space, spaces.Box)

    def act(obs: Any) -> np.ndarray:
        with torch.no_grad():
            tensor = {k: torch.as_tensor(v) for k, v in obs.items()} if isinstance(obs, dict) else torch.as_tensor(obs)
            actions = policy._predict(tensor, deterministic=deterministic).cpu().numpy()
        if box and policy.squash_output:  # as predict() does: SAC's tanh-squashed actions to the bounds
            actions = policy.unscale_action(actions)
        elif isinstance(model.action_space, spaces.Box):  # as predict() does for an unsquashed Gaussian
            actions = np.clip(actions, model.action_space.low, model.action_space.high)
        return actions

    return act


FINGERPRINT_STEPS = 32


def _digest(value: Any, h: Any) -> None:
    """Feed an observation, reward or flag into the hash ``h`` (arrays by their bytes, dicts key by key)."""
    if isinstance(value, Mapping):
        for key in sorted(value):
            h.update(str(key).encode())
            _digest(value[key], h)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _digest(v, h)
    else:
        a = np.asarray(value)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())


def env_fingerprint(env: gym.Env, seed: int = RANDOM_SEED, steps: int = FINGERPRINT_STEPS) -> str:
    """What ``env`` is, as far as a cached measurement on it cares: its wrappers, its spec and time limits, and
    what it does in its first ``steps`` steps from a reset with ``seed`` under actions drawn from its action
    space seeded alike (observations, rewards, ends). An env whose code changed under the same family and
    parameters (a user's own, edited) has another fingerprint. Resets the env."""
    h = hashlib.sha256()
    spec = env.spec
    h.update(repr((str(env), time_limit(env), spec.id if spec else None)).encode())
    space = env.action_space
    space.seed(seed)
    obs, _ = env.reset(seed=seed)
    _digest(obs, h)
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(space.sample())
        _digest((obs, float(reward), terminated, truncated), h)
        if terminated or truncated:
            obs, _ = env.reset()
            _digest(obs, h)
    return h.hexdigest()[:20]


def random_return(family: Family, task: Task, episodes: int = 100, cache_dir: str | Path | None = None) -> float:
    """Mean return of a uniformly random policy on ``task``, measured once and cached under what determines it:
    the family, the task's parameters, the protocol, Gymnasium's version and the env's fingerprint
    (:func:`env_fingerprint`; a family whose env changed is measured again)."""
    cache_dir = Path(cache_dir or os.environ.get("RLTRANSFER_CACHE") or Path.home() / ".cache" / "rltransfer")
    probe = family.make(task)
    try:
        fingerprint = env_fingerprint(probe)
    finally:
        probe.close()
    key_data = {
        "family": family.name,
        "params": dict(task.params),
        "episodes": episodes,
        "seed": RANDOM_SEED,
        "gymnasium": gym.__version__,
        "env": fingerprint,
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir / "random_returns" / f"{key}.json"
    if path.is_file():
        try:
            return float(json.loads(path.read_text())["mean_return"])
        except (ValueError, KeyError):
            pass  # a damaged cache entry is measured again
    env = DummyVecEnv([lambda: family.make(task) for _ in range(min(episodes, MAX_PARALLEL))])
    space = env.action_space
    space.seed(RANDOM_SEED)
    try:
        returns = run_episodes(
            env, lambda obs: np.array([space.sample() for _ in range(env.num_envs)]), episodes, RANDOM_SEED
        )
    except EndlessEpisode as err:
        raise EndlessEpisode(f"task '{task.name}' of family '{family.name}', a random policy: {err}") from None
    finally:
        env.close()
    value = float(returns.mean())
    entry = {**key_data, "task": task.name, "mean_return": value, "std_return": float(returns.std())}
    atomic_write_bytes(path, json.dumps(entry).encode())  # experiments side by side share the cache
    return value


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
        self._params: list[torch.Tensor] = []  # the policy's parameters, from the start of training
        self._env: VecEnv | None = None
        self._measured: tuple[list[np.ndarray], tuple[float, float, float]] | None = None
        """What the last measurement scored (:meth:`_scored_state`) and what it measured: mean, std, score."""
        self.defer = False
        """Leave each evaluation in :attr:`pending` for :func:`evaluate_together` (the batched engine)."""
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
        for one in _observation_statistics(model):
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
        self._params = list(self.model.policy.parameters())
        self._evaluate_due()

    def _on_step(self) -> bool:
        return self._evaluate_due()

    def _check_finite(self) -> None:
        """Stop the run before it scores an agent with a non-finite parameter (rltransfer's algorithms stop
        at the update that makes one; this catches any other's at its next checkpoint). One check of all the
        parameters at once; their names only for the message."""
        if not self._params or torch.isfinite(torch.cat([p.detach().reshape(-1) for p in self._params])).all():
            return
        for name, param in self.model.policy.named_parameters():
            if not torch.isfinite(param).all():
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


def threshold(family: Family, task: Task, thresholds: Mapping[str, float]) -> float:
    """The return that counts as solving ``task``: the config's ``evaluation.thresholds`` entry, else the
    family's (or Gymnasium's), which is looked up only where the config gives none."""
    given = thresholds.get(task.name)
    return float(given if given is not None else family.reward_threshold(task))


def thresholds_and_baselines(
    family: Family, tasks: list[Task], thresholds: Mapping[str, float], cache_dir: str | Path | None = None
) -> dict[str, dict[str, float]]:
    """Per task: the threshold (config, family, or Gymnasium) and the measured random return."""
    out = {}
    for task in tasks:
        tau = threshold(family, task, thresholds)
        r = random_return(family, task, cache_dir=cache_dir)
        out[task.name] = {"threshold": tau, "random_return": r}
    return out
