"""Which pre-trainings an experiment transfers from: each one's score on its source tasks, and the
gate ``pretrain.min_source_score`` that keeps a pre-training only where it learned every source task.

A pre-training that never solved a source task is a different starting point from one that did, and a
transfer seed that starts from it measures the failure of that pre-training, not the strategy
(MiniGrid's doorkey-8 over three pre-trainings: 0 of 3 runs from the pre-training that scored 0 on
DoorKey-5, 6 of 7 from the other two). The gate is the check a practitioner makes before transferring;
its price is the rejected pre-trainings' steps, which the experiment counts in the cost of pre-training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def source_scores(
    evaluation: Mapping[str, Mapping[str, float]], baselines: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """Per source task: s = (R - R_random) / (tau - R_random) of the pre-training's final evaluation,
    the score the reports use for targets (1.0 at the threshold)."""
    out = {}
    for name, res in evaluation.items():
        tau, rand = baselines[name]["threshold"], baselines[name]["random_return"]
        out[name] = (float(res["mean_return"]) - rand) / (tau - rand)
    return out


@dataclass(frozen=True)
class Pretraining:
    """One pre-training seed as the experiment judged it."""

    seed: int
    timesteps: int
    scores: dict[str, float]
    slot: int | None
    """The place it takes: transfer seed i starts from the pre-training in place i mod ``pretrain.seeds``
    (``None``: rejected). Seeds 0..n-1 take places 0..n-1; a rejected one's place goes to the next seed."""
    copied_from: str | None = None
    """The pre-training directory of another experiment its bundle was copied from (:mod:`rltransfer.store.reuse`)."""
    code_revision: str | None = None
    """The rltransfer revision that trained it (:mod:`rltransfer.revision`; ``None``: not recorded)."""

    @property
    def kept(self) -> bool:
        return self.slot is not None

    @property
    def weakest(self) -> tuple[str, float]:
        name = min(self.scores, key=self.scores.__getitem__)
        return name, self.scores[name]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kept": self.kept}


def passes(scores: Mapping[str, float], min_score: float | None) -> bool:
    """Whether a pre-training with these source scores is kept (every one at ``min_score`` or above)."""
    return min_score is None or min(scores.values()) >= min_score


def steps_per_kept(pretrainings: Sequence[Pretraining]) -> int:
    """The source steps one kept pre-training costs: every seed tried, rejected ones included, shared
    among the kept ones (without a gate, a kept pre-training's own steps)."""
    kept = sum(p.kept for p in pretrainings)
    return round(sum(p.timesteps for p in pretrainings) / kept) if kept else 0


def rejection_message(pretrainings: Sequence[Pretraining], wanted: int, min_score: float, tried: int) -> str:
    kept = [p for p in pretrainings if p.kept]
    lines = [
        f"pretrain.min_source_score={min_score:g}: {len(kept)} of the {wanted} pre-training(s) wanted passed in the "
        f"{tried} seed(s) pretrain.max_seeds allows; rejected:"
    ]
    for p in pretrainings:
        if not p.kept:
            name, score = p.weakest
            lines.append(f"  seed {p.seed}: {name} scored {score:.2f}")
    lines.append(
        "every bundle is kept in the run directory: raise pretrain.max_seeds (the next seeds are trained and the "
        "rest re-used), lower pretrain.min_source_score (null: no gate), or give pre-training more steps"
    )
    return "\n".join(lines)


def unlearnt_warning(seed: int, scores: Mapping[str, float]) -> str | None:
    """A warning naming the source tasks a pre-training left below their threshold (score < 1), or None."""
    below = {name: score for name, score in scores.items() if score < 1.0}
    if not below:
        return None
    # Three decimals: a score just short of 1 must not read as 1.00.
    listed = ", ".join(f"{name} {score:.3f}" for name, score in sorted(below.items(), key=lambda kv: kv[1]))
    return (
        f"warning: pre-training seed {seed} left {len(below)} source task(s) below the threshold (score s, 1.0 at "
        f"the threshold): {listed}; transfers from it start from an agent that did not learn them "
        "(pretrain.min_source_score rejects such pre-trainings)"
    )
