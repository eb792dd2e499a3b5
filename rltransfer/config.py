"""Experiment configs: YAML validated into typed objects before anything runs.

Pure: no torch, no environments. Checks against the registries (families, tasks,
hyperparameters) live in :mod:`rltransfer.validation`.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from rltransfer.config_errors import format_validation_error
from rltransfer.config_yaml import apply_overrides, read_yaml
from rltransfer.errors import ConfigError

TaskSpec = Union[str, dict[str, Any]]

DEFAULT_STRATEGIES = ["scratch", "zero_shot", "finetune", "freeze_encoder", "lr_scaled", "adapter", "kickstart"]


MAX_SEED = 2**31 - 1
"""The largest seed rltransfer takes: numpy's legacy seeding (SB3's ``set_random_seed``) takes up to 2**32 - 1,
and the probes and evaluations add offsets of millions to a run's seed."""


def check_seed(seed: Any, where: str = "seed") -> int:
    """``seed`` as an int, where it is a whole number from 0 to :data:`MAX_SEED` (a NumPy integer too; not a
    bool, a float or text): an argument of the Python API, checked before anything is built."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{where} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def check_steps(steps: Any, where: str = "timesteps", whole_floats: bool = False) -> int:
    """``steps`` as an int, where it is a whole number of at least 1 (an argument of the Python API).
    ``whole_floats``: a float of a whole value is one too (``1e5``, as SB3's ``learn`` takes a budget)."""
    if whole_floats and isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or int(steps) < 1:
        raise ConfigError(f"{where} must be a whole number of at least 1, got {steps!r}")
    return int(steps)


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic takes true for 1 where an int is expected
        raise ValueError("expected a number, not true/false")
    return value


Count = Annotated[int, BeforeValidator(_not_a_bool)]
"""A whole number (``1.0e+5`` is one; ``true`` is not)."""
Positive = Annotated[Count, Field(ge=1)]
"""A whole number of at least 1 (a layer's units, workers)."""
Number = Annotated[float, BeforeValidator(_not_a_bool)]
"""A finite number (no NaN or infinity: :class:`_Strict` models refuse them)."""


def _true_or_false_only(value: Any) -> Any:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):  # pydantic takes 0, 1, "yes"...
        raise ValueError("expected true or false")
    if type(value).__name__ == "bool" and type(value).__module__ == "numpy":  # pydantic reads it as an index,
        return bool(value)  # which NumPy 2.2 deprecates ("will be an error")
    return value


Flag = Annotated[bool, BeforeValidator(_true_or_false_only)]
"""true or false (a NumPy bool too; not 0, 1 or a string)."""
PathText = Annotated[str, BeforeValidator(lambda v: os.fspath(v) if isinstance(v, os.PathLike) else v)]
"""A path, kept as text (a ``pathlib.Path`` given from Python is one)."""


ONE_NAME = "one directory name: not empty, no '/' or '\\', not '.' or '..', no spaces at either end"
"""What a name that becomes a directory may be (an experiment's, a strategy's; envs restates it for tasks)."""


def is_one_name(text: str) -> bool:
    """Whether ``text`` names one directory under another (``../x`` would leave it, ``""`` or ``.`` be it)."""
    return text.strip() == text and text not in ("", ".", "..") and "/" not in text and "\\" not in text


def _one_directory_name(value: Any) -> Any:
    if isinstance(value, str) and not is_one_name(value):
        raise ValueError(f"expected {ONE_NAME} (the experiment's directory, under output_dir)")
    return value


DirName = Annotated[str, BeforeValidator(_one_directory_name)]
"""One directory's name: an experiment's, under ``output_dir`` (``../x`` wrote outside it, ``""`` into it)."""


class _Strict(BaseModel):
    """Unknown keys refused, values frozen, and no NaN or infinity where a number is expected."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EncoderConfig(_Strict):
    """The observation encoder (shared by every task and by actor and critic)."""

    model_config = ConfigDict(extra="allow")  # an encoder's own arguments (e.g. ``channels`` for ``cnn``)

    type: str = "mlp"
    """Registered encoder name (``mlp`` for vectors, ``cnn`` for small images)."""
    hidden: list[Positive] = Field(default_factory=lambda: [64])
    """Hidden layer widths; the last is the features dimension."""
    activation: Literal["tanh", "relu", "elu"] = "tanh"
    """Activation of encoder and trunk."""


class TrunkConfig(_Strict):
    """Shared policy and value layers after the encoder (SB3's ``net_arch``)."""

    pi: list[Positive] = Field(default_factory=lambda: [64])
    """Policy layers."""
    vf: list[Positive] = Field(default_factory=lambda: [64])
    """Value layers."""


class AgentConfig(_Strict):
    """The agent: algorithm, architecture and SB3 hyperparameters."""

    algo: Literal["ppo", "sac", "dqn"] = "ppo"
    """SB3 algorithm."""
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    trunk: TrunkConfig = Field(default_factory=TrunkConfig)
    heads: Literal["per_task", "shared"] = "per_task"
    """One action/value head per task, or one shared head conditioned through the observation."""
    normalize: Flag = False
    """Normalise observations (and rewards) with running statistics (SB3's VecNormalize)."""
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the SB3 algorithm (``n_steps``, ``learning_rate``...)."""


class PretrainConfig(_Strict):
    """Multi-task pre-training on the source tasks."""

    timesteps: Count = Field(100_000, gt=0)
    """Total environment steps, over all source tasks."""
    seeds: Count = Field(1, ge=1)
    """Number of pre-training seeds (0..n-1)."""
    envs_per_task: Count = Field(2, ge=1)
    """Sub-envs per source task in the vector env (each task gets the same share of samples)."""
    eval_episodes: Count = Field(10, ge=1)
    """Episodes per source task in the final evaluation."""
    hyperparams: dict[str, Any] = Field(default_factory=dict)
    """Overrides of ``agent.hyperparams`` for pre-training only (e.g. a larger ``batch_size``)."""
    min_source_score: Number | None = None
    """A gate on pre-trainings (experiments): one whose final evaluation scores below this on some
    source task (score s = (R - R_random) / (tau - R_random); 1.0 is the task's threshold) is not
    transferred from; the next seed is trained in its place, and its steps count in the cost of
    pre-training. ``None``: every pre-training is kept."""
    max_seeds: Count | None = Field(None, ge=1)
    """With ``min_source_score``: the most pre-training seeds to try, rejected ones included, before
    the experiment stops and says so (default: twice ``seeds``)."""

    @model_validator(mode="after")
    def _max_seeds_with_a_gate(self) -> PretrainConfig:
        if self.max_seeds is not None:
            if self.min_source_score is None:
                raise ValueError(
                    "pretrain.max_seeds applies only with pretrain.min_source_score (the gate); set both or neither"
                )
            if self.max_seeds < self.seeds:
                raise ValueError(
                    f"pretrain.max_seeds ({self.max_seeds}) is below pretrain.seeds ({self.seeds}); it counts every seed tried"
                )
        return self

    @property
    def seeds_to_try(self) -> int:
        """How many seeds may be trained to keep ``seeds`` of them."""
        if self.min_source_score is None:
            return self.seeds
        return self.max_seeds if self.max_seeds is not None else 2 * self.seeds


class TransferConfig(_Strict):
    """Training on held-out targets with each strategy."""

    timesteps: Count = Field(50_000, gt=0)
    """Target-environment steps per run (the budget B)."""
    strategies: list[str] = Field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    """Strategies to compare (``scratch`` is always run as the baseline)."""
    seeds: Count = Field(10, ge=1)
    """Seeds 0..n-1 for every (target, strategy)."""
    head_init: Literal["fresh", "mean", "nearest", "probe"] = "nearest"
    """How a target's heads start: fresh, the mean of source heads, the nearest source task's (by
    context), or the source head that does best when each is tried on the target (``probe``: its
    episodes are target steps, charged to the run)."""
    probe_episodes: Count = Field(1, ge=1)
    """Episodes per source head of a ``probe``."""
    n_envs: Count = Field(1, ge=1)
    """Parallel target envs per run."""
    strategy_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-strategy parameters, e.g. ``{lr_scaled: {lr_scale: 0.1}, adapter: {rank: 4}}``."""


class EvaluationConfig(_Strict):
    """How runs are evaluated (docs/evaluation.md)."""

    every: Count = Field(2500, gt=0)
    """Target steps between evaluations (steps, not episodes)."""
    episodes: Count = Field(10, ge=1)
    """Episodes per evaluation."""
    deterministic: Flag = True
    """Evaluate the deterministic policy."""
    thresholds: dict[str, Number] = Field(default_factory=dict)
    """Per-task return thresholds overriding the family's / Gymnasium's."""


class RunnerConfig(_Strict):
    """Where runs execute."""

    backend: Literal["local", "ray"] = "local"
    workers: Positive | Literal["auto"] = "auto"
    """Parallel runs (``auto``: the number of cores)."""
    address: str | None = None
    """Ray cluster address (``None`` starts a local one)."""
    batch_seeds: Flag | None = None
    """Train the seeds of each (target, strategy) side by side as one batched model (PPO, SAC and DQN: the
    strategies whose update it restates), each worker taking a batch of seeds: several times the throughput
    of one SB3 process per seed, with other random streams than SB3's own ``learn`` (so a run's key says which
    engine trained it). A seed's run is the same in any batch. ``false``: one SB3 ``learn`` per seed (as
    directories and publications made before 2026-12-03). Left out (``null``): batched, except in a cell of a
    directory that already holds finished runs, which keeps the engine that trained them (a resumed grid is
    not trained again). See docs/batched.md."""
    reuse_other_experiments: Flag = True
    """Copy finished work of another experiment under the same ``output_dir`` instead of doing it again: a
    pre-training of the same pre-training config (``pretraining_hash``), and a run that loads nothing from its bundle (``scratch``)
    with the same agent, target, seed, budget and evaluation (:mod:`rltransfer.store.reuse`)."""


class ParameterSpec(_Strict):
    """One parameter of a family declared as data: its range, and where it goes in the env."""

    default: Number
    low: Number
    high: Number
    integer: Flag = False
    doc: str = ""
    kwarg: str | None = None
    """A constructor argument of ``gym.make(env_id, ...)``."""
    attribute: str | None = None
    """A path on ``env.unwrapped``: names joined by dots, at most one ``[index]`` or ``[a:b]``
    (``model.body_mass[1]``, ``model.opt.gravity[2]``)."""
    mode: Literal["set", "scale"] = "set"
    """``set``: the value goes there; ``scale``: what is there is multiplied by it (attributes only)."""

    @model_validator(mode="after")
    def _one_place(self) -> ParameterSpec:
        if (self.kwarg is None) == (self.attribute is None):
            raise ValueError(
                "give exactly one of 'kwarg' (a constructor argument) or 'attribute' (a path on env.unwrapped)"
            )
        if self.mode == "scale" and self.attribute is None:
            raise ValueError("mode 'scale' applies to an attribute only")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} outside [low, high] = [{self.low}, {self.high}]")
        return self


class FamilySpec(_Strict):
    """A family declared as data over a registered Gymnasium id (see :mod:`rltransfer.envs.declared`)."""

    name: str
    env_id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    parameters: dict[str, ParameterSpec]
    tasks: dict[str, dict[str, Number]]
    sources: list[str]
    targets: dict[str, Literal["interpolation", "extrapolation"]] | list[str]
    reward_threshold: Number | None = None
    threshold_note: str = ""
    derived: str | None = None
    """``module:function``, called as ``function(env.unwrapped, params)`` after the parameters are set:
    it recomputes quantities the env derives from them (CartPole's ``total_mass``, say)."""


class ExperimentConfig(_Strict):
    """A whole experiment: family, tasks, agent, pre-training, transfer, evaluation, runner."""

    name: DirName = "experiment"
    """Experiment name; output goes to ``<output_dir>/<name>/``."""
    output_dir: PathText = "runs"
    family: str
    """A registered family (``rltransfer families`` lists them), or one of :attr:`families`."""
    families: list[FamilySpec] = Field(default_factory=list)
    """Families declared as data, inline or in YAML files the config names (a path is read, relative to
    the config file, and the resolved config holds the declaration)."""
    imports: list[str] = Field(default_factory=list)
    """Modules imported before anything runs, in the driver and in every worker (families, strategies
    or encoders they register)."""
    source_tasks: list[TaskSpec] | None = None
    """Task names or parameter dicts (default: the family's source tasks)."""
    target_tasks: list[TaskSpec] | None = None
    """Held-out tasks (default: the family's target tasks)."""
    conditioning: Literal["none", "onehot", "context"] = "context"
    agent: AgentConfig = Field(default_factory=AgentConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)

    @model_validator(mode="after")
    def _default_strategies_fit_the_algorithm(self) -> ExperimentConfig:
        # The default list includes kickstart, which applies to PPO only: left out of the
        # default for DQN and SAC (an explicit list is checked, and refused, by validation).
        if "strategies" not in self.transfer.model_fields_set and self.agent.algo != "ppo":
            fitting = [s for s in DEFAULT_STRATEGIES if s != "kickstart"]
            return self.model_copy(update={"transfer": self.transfer.model_copy(update={"strategies": fitting})})
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as data; ``families`` and ``imports`` only where given (a config of a
        shipped family resolves to what it did before they existed)."""
        data = self.model_dump(mode="json")
        for key in ("families", "imports"):
            if not data[key]:
                del data[key]
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def hash(self) -> str:
        """A short, stable hash of the resolved config (what was run)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def family_spec(data: Any, where: str) -> FamilySpec:
    """``data``, a family declared as data (from the file ``where``), as a :class:`FamilySpec`; a
    ConfigError names each wrong key as a config's refusal does."""
    try:
        return FamilySpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, FamilySpec, f"invalid family file '{where}'", "key")) from None


def _read_family_files(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``families`` entries that name files (relative to ``base``, the config's directory) replaced by
    the declarations they hold."""
    entries = data.get("families")
    if not isinstance(entries, list) or not any(isinstance(e, (str, os.PathLike)) for e in entries):
        return data
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, (str, os.PathLike)):
            path = Path(entry) if Path(entry).is_absolute() or not (base / entry).exists() else base / entry
            if not path.is_file():
                raise ConfigError(f"config key 'families[{i}]': file '{entry}' not found (relative to '{base}')")
            try:
                entry = read_yaml(path)
            except ConfigError as err:
                raise ConfigError(f"config key 'families[{i}]': {err}") from None
        out.append(entry)
    return {**data, "families": out}


def load_config(
    config: str | Path | Mapping[str, Any] | ExperimentConfig,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> ExperimentConfig:
    """Validate a config (a YAML path, a dict, or a config object) with ``--set``-style overrides.

    :raises ConfigError: naming every wrong key and what is allowed.
    """
    base = Path.cwd()
    if isinstance(config, ExperimentConfig):
        data = config.to_dict()
    elif isinstance(config, Mapping):
        data = dict(config)
    else:
        data = read_yaml(config)
        base = Path(config).parent
    data = apply_overrides(data, overrides)
    data = _read_family_files(data, base)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, ExperimentConfig)) from None
