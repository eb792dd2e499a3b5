"""Which runs of a grid train side by side, and how they are grouped.

With ``runner.batch_seeds``, the seeds of one (target, strategy) train as one batched model
(:class:`rltransfer.agents.batched_ppo.BatchedPPO`, :class:`rltransfer.agents.batched_sac.BatchedSAC`,
:class:`rltransfer.agents.batched_dqn.BatchedDQN`) where the engine restates the strategy's update: PPO
strategies that train (``kickstart`` among them), SAC and DQN strategies that train, except where the
hyperparameters ask for what the engines do not restate (:func:`unbatchable_hyperparams`). The others
(``zero_shot``) run as before, one SB3 ``learn`` each. A run's engine is decided here, once, when its job is
made: it is part of the run's key (another engine gives other random streams, so another run). With
``runner.batch_seeds`` left out, a cell whose directory holds finished runs keeps their engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import ceil
from typing import Any

from rltransfer.agents.transfer_ppo import KickstartPPO
from rltransfer.config import ExperimentConfig
from rltransfer.execution.job import BATCHED, SB3, RunJob
from rltransfer.strategies import plan_of


def engine_of(cfg: ExperimentConfig, strategy: str, kept: str | None = None) -> str:
    """The engine that trains ``strategy``'s runs of ``cfg``: ``batched`` or ``sb3``. ``kept``: the engine of the
    cell's finished runs in the experiment's directory, which it keeps where ``runner.batch_seeds`` is left out."""
    if cfg.runner.batch_seeds is False:
        return SB3
    if cfg.runner.batch_seeds is None and kept is not None:
        return kept
    if unbatchable_hyperparams(cfg.agent.algo, cfg.agent.hyperparams):
        return SB3
    plan = plan_of(strategy, cfg.transfer.strategy_params.get(strategy))
    if plan is None or not plan.train or plan.algo_type() not in (None, KickstartPPO):
        return SB3
    return BATCHED


def unbatchable_hyperparams(algo: str, hyperparams: Mapping[str, Any]) -> str | None:
    """Why the batched engine cannot train an ``algo`` agent of these hyperparameters, where the config says
    it (None: it can): the update or loop it would take that the engines do not restate. Decided here, where
    a run's engine is chosen, so that such a run is an SB3 run by its key too; the engines check each model
    again when they take it (``unbatchable`` of :mod:`rltransfer.agents.batched_ppo`, ``batched_sac``,
    ``batched_dqn``)."""
    if algo == "ppo":
        return "target_kl stops each seed's epochs on its own" if hyperparams.get("target_kl") is not None else None
    if hyperparams.get("optimize_memory_usage"):
        return "optimize_memory_usage (a replay buffer that stores each observation once)"
    freq = hyperparams.get("train_freq")
    if isinstance(freq, Sequence) and not isinstance(freq, str) and len(freq) == 2 and str(freq[1]) != "step":
        return "train_freq counted in episodes"
    return None


def batches(jobs: Sequence[RunJob], workers: int) -> list[list[RunJob]]:
    """``jobs`` as the units the workers take, in order of first appearance: the batched jobs of each
    (target, strategy) together, split into as many batches of near-equal size as keep ``workers`` busy
    where there are fewer cells than workers; every other job alone."""
    cells: dict[tuple[str, str], list[RunJob]] = {}
    units: list[list[RunJob]] = []
    for job in jobs:
        if job.engine != BATCHED:
            units.append([job])
            continue
        key = (job.target["name"], job.strategy)
        if key not in cells:
            cells[key] = []
            units.append(cells[key])
        cells[key].append(job)
    split = max(1, ceil(workers / max(1, len(cells))))
    out: list[list[RunJob]] = []
    for unit in units:
        if len(unit) > 1 and unit[0].engine == BATCHED and split > 1:
            n = min(split, len(unit))
            size = ceil(len(unit) / n)
            out.extend(unit[i : i + size] for i in range(0, len(unit), size))
        else:
            out.append(unit)
    return out
