"""What a saved target agent's observations are built of, beside its task's own observation: the record a run
saves with its ``model.zip`` (a model attribute, which SB3's ``save`` and ``load`` keep), so that the model file
alone rebuilds them on a plain env (:func:`rltransfer.wrap_target_env`, ``rltransfer evaluate``).

:func:`rltransfer.target_env.observation_record` fills it in and :func:`rltransfer.target_env.read_record` reads
it back (a model stores its JSON object, :meth:`~rltransfer.records.base.Record.to_json`).
"""

from __future__ import annotations

from typing import Any, Literal

from rltransfer.records.base import Record
from rltransfer.records.observation_stats import ObservationStats

ADAPTING = "adapting"
"""The record's ``normalization`` in a model saved while training still adapted its observation statistics (by a
callback, as SB3's ``EvalCallback`` saves the best model): the statistics it acted with then are not in it."""


class TargetTask(Record):
    """The task the agent was trained on: its name in its family and its parameters."""

    name: str
    params: dict[str, Any]


class ObservationRecord(Record):
    """How a target agent's observations are built from its task's own."""

    algo: str
    """The algorithm its ``model.zip`` loads with (``ppo``, ``sac``, ``dqn``)."""
    family: str
    family_spec: dict[str, Any] | None = None
    """A family declared as data: its declaration, so that the agent's family is known without its config."""
    conditioning: str
    """How the agent knows its task (``none``, ``onehot``, ``context``), as its bundle was conditioned."""
    source_tasks: list[str]
    """The bundle's source tasks, in order (a ``onehot`` conditioning's positions)."""
    target: TargetTask
    obs_space: dict[str, Any]
    """The observation space of the task's own observation as the agent saw it (padded where the family's tasks'
    spaces differ), as :func:`rltransfer.spaces_json.space_to_json` writes it."""
    entries: dict[str, list[float]]
    """The entries beside it (``task``, and ``context`` where conditioned), by name."""
    obs_layout: list[tuple[str, int]] | None = None
    """A flat observation's entries and lengths, in order (``None``: a ``Dict``)."""
    normalization: ObservationStats | Literal["adapting"] | None = None
    """The observation statistics it acted with (``None``: not normalised; :data:`ADAPTING`: saved while
    training still adapted them)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object (its layout's entries as lists, as JSON reads them back)."""
        data = super().to_json()
        if data.get("obs_layout") is not None:
            data["obs_layout"] = [list(entry) for entry in data["obs_layout"]]
        return data
