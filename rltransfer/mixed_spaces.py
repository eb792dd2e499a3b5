"""What an experiment whose tasks' spaces differ (vector observations of different lengths, different numbers
of Discrete actions: :mod:`rltransfer.envs.mixed`) asks of its config: checked when the config loads
(:func:`rltransfer.validation.validate`), so that no run of its grid fails on what the config already said."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import cast

from gymnasium import spaces

from rltransfer.config import ExperimentConfig
from rltransfer.envs import Family, Task, TaskSpaces
from rltransfer.envs.mixed import same_layout
from rltransfer.errors import ConfigError


def check_mixed_spaces(
    config: ExperimentConfig, family: Family, sources: Sequence[Task], targets: Sequence[Task], layout: TaskSpaces
) -> None:
    """The settings that need one layout (observation statistics, shared heads, another encoder than the mlp's
    input stems, a probe of every source head) are refused where the tasks' spaces differ, and an input stem's
    width where they do not; a target whose spaces differ from sources that all share one (their bundle has no
    stem or head for it: a pre-training does not depend on its targets), and kickstarting from a nearest source
    of other sizes than its target's, are refused (every run of them failed)."""
    if not layout.mixed and config.agent.encoder.type == "mlp" and "stem_width" in (config.agent.encoder.model_extra or {}):  # fmt: skip
        raise ConfigError(
            "config key 'agent.encoder.stem_width': the mlp encoder's input stems exist where the tasks' observations "
            "differ in length, and these tasks' do not (the width would do nothing); leave stem_width out"
        )
    if not layout.mixed:
        return
    if config.agent.normalize:
        raise ConfigError(
            "config key 'agent.normalize': observation statistics need one observation layout, and these tasks' "
            f"observations differ in length ({dict(zip([t.name for t in [*sources, *targets]], layout.obs_dims))}); "
            "use false"
        )
    if config.agent.heads != "per_task":
        raise ConfigError(
            "config key 'agent.heads': tasks whose spaces differ need per_task heads (each sized to its task's actions)"
        )
    if config.agent.encoder.type != "mlp":
        raise ConfigError(
            f"config key 'agent.encoder.type': tasks whose spaces differ need the mlp encoder's input stems, "
            f"not {config.agent.encoder.type}"
        )
    if config.transfer.head_init == "probe":
        raise ConfigError(
            "config key 'transfer.head_init': 'probe' runs every source head on the target, and these tasks' "
            "spaces differ; allowed here: fresh, mean, nearest"
        )
    from rltransfer.envs.multitask import own_spaces

    own = own_spaces(family, [*sources, *targets])
    source_spaces, target_spaces = own[: len(sources)], own[len(sources) :]
    if all(same_layout(o, source_spaces[0][0]) and a == source_spaces[0][1] for o, a in source_spaces):
        _check_targets_of_one_space(family, targets, source_spaces[0], target_spaces)
    elif "kickstart" in config.transfer.strategies:
        default = "strategies" not in config.transfer.model_fields_set
        _check_teachers(family, sources, targets, source_spaces, target_spaces, default)


def _check_targets_of_one_space(
    family: Family,
    targets: Sequence[Task],
    theirs: tuple[spaces.Space, spaces.Space],
    target_spaces: Sequence[tuple[spaces.Space, spaces.Space]],
) -> None:
    """Sources that share one space pre-train an agent without input stems or per-task head sizes: a target of
    another space has nothing to start from."""
    for target, mine in zip(targets, target_spaces):
        differ = [
            f"{verb} {m}, where every source task {verb} {t}"
            for verb, m, t, same in zip(("observes", "acts in"), mine, theirs, (same_layout, operator.eq))
            if not same(m, t)
        ]
        if not differ:
            continue
        raise ConfigError(
            f"config key 'target_tasks': target '{target.name}' {' and '.join(differ)}: a pre-training on source "
            "tasks of one space has no input stem or head for another (it does not depend on its targets, so that "
            "its bundle serves every target of its sources' spaces), and each run on the target would fail; "
            "pre-train on source tasks whose spaces differ (each gets its own input stem and head, and so does a "
            f"target of other sizes), or give '{target.name}' the sources' spaces in family '{family.name}'"
        )


def _check_teachers(
    family: Family,
    sources: Sequence[Task],
    targets: Sequence[Task],
    source_spaces: Sequence[tuple[spaces.Space, spaces.Space]],
    target_spaces: Sequence[tuple[spaces.Space, spaces.Space]],
    default: bool,
) -> None:
    """Kickstarting's teacher is the head of the target's nearest source, which must read and act in the
    target's sizes."""
    for target, mine in zip(targets, target_spaces):
        i = family.nearest(target, sources)
        if _sizes(source_spaces[i]) != _sizes(mine):
            raise ConfigError(
                f"config key 'transfer.strategies': 'kickstart' is taught by the head of the target's nearest "
                f"source, which must have the target's sizes; target '{target.name}' has {_said(mine)}, its nearest "
                f"source '{sources[i].name}' {_said(source_spaces[i])}: leave kickstart out"
                + (" (the default strategies include it: list them in transfer.strategies)" if default else "")
                + ", or pre-train on a source task of the target's sizes nearer to it"
            )


def _sizes(task_spaces: tuple[spaces.Space, spaces.Space]) -> tuple[int, int | None]:
    """A task's observation length and number of Discrete actions (None: a Box of actions, the same for every
    task), as the layout of tasks whose spaces differ counts them."""
    obs, act = task_spaces
    return int(cast(spaces.Box, obs).shape[0]), int(act.n) if isinstance(act, spaces.Discrete) else None


def _said(task_spaces: tuple[spaces.Space, spaces.Space]) -> str:
    length, actions = _sizes(task_spaces)
    return f"{length} observation entries" + ("" if actions is None else f" and {actions} actions")
