"""The deferred evaluations of a batch's runs, measured together: one forward pass a step for all of them.

The batched engines defer each seed's deterministic evaluation (:attr:`~rltransfer.evaluation.Evaluator.pending`)
and measure the waiting ones of all their seeds at once (:func:`evaluate_together`): each run's episodes on its
own evaluation env and reset seeds, as alone, the actions of all from one call. The returns are each run's
alone, bit for bit (``tests/test_evaluation_together.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from rltransfer.envs.multitask import StepTogether
from rltransfer.evaluation import EVAL_SEED, Episodes, Evaluator, observation_statistics


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


@contextmanager
def _as_scored(models: Sequence[tuple[BaseAlgorithm, list[np.ndarray]]]) -> Iterator[None]:
    """Each model's policy parameters and observation statistics set, for the duration, to ``state`` (what
    :meth:`Evaluator._scored_state` kept), and its own restored after, bit for bit. The batched engines'
    parameters are views of their stacked rows, so their forward pass sees the state too."""
    saved = []
    with torch.no_grad():
        for model, state in models:
            params = list(model.policy.parameters())
            stats = observation_statistics(model)
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
