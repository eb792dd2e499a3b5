"""Check a config against the registries (families, tasks, algorithms) and resolve its tasks."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gymnasium import spaces

from rltransfer.agents.component_names import TRUNK_SIDES
from rltransfer.config import ExperimentConfig, load_config
from rltransfer.envs import Family, Task, TaskError, get_family, register_declared
from rltransfer.errors import ConfigError, did_you_mean
from rltransfer.hyperparameters import check_hyperparam_values, check_hyperparams
from rltransfer.mixed_spaces import check_mixed_spaces
from rltransfer.records.env_behaviour import EnvBehaviour, TaskBehaviour
from rltransfer.space_checks import check_action_space, check_observation_space

if TYPE_CHECKING:
    from rltransfer.envs.checks import Check


@dataclass(frozen=True)
class Setup:
    """A config resolved: its family and tasks. Made once (an experiment, a pre-training or a transfer
    from the API) and passed down; whatever is handed a Setup neither loads nor resolves the config again."""

    config: ExperimentConfig
    family: Family
    sources: list[Task]
    targets: list[Task]

    def split(self, task: Task) -> str:
        return self.family.split_of(task, self.sources)


def _tasks(family: Family, specs: list | None, default: list[str], key: str) -> list[Task]:
    specs = list(default) if specs is None else specs
    tasks = []
    for i, spec in enumerate(specs):
        try:
            tasks.append(family.task(spec, where=f"config key '{key}[{i}]'"))
        except TaskError as err:
            raise ConfigError(str(err)) from None
    names = [t.name for t in tasks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"config key '{key}': task names repeat: {dupes}")
    return tasks


def check_inert_settings(config: ExperimentConfig) -> None:
    """Settings that would be taken and do nothing in this config, refused (at validation: a directory whose
    config holds one still loads, for its report): DQN's ``trunk.pi`` (its one network, the Q-network, takes
    ``trunk.vf``), a ``head_init`` with one shared head (transferred as it is), ``probe_episodes`` without a probe,
    a Ray ``address`` for the local pool. Each against its default: a resolved config writes every key out."""
    from rltransfer.config import TransferConfig, TrunkConfig

    agent, transfer, runner = config.agent, config.transfer, config.runner
    if agent.algo == "dqn" and agent.trunk.pi != TrunkConfig().pi:
        raise ConfigError(
            f"config key 'agent.trunk.pi': DQN has no policy network (its Q-network's layers are agent.trunk.vf); "
            f"leave pi out (got {agent.trunk.pi})"
        )
    if agent.heads == "shared" and transfer.head_init != TransferConfig().head_init:
        raise ConfigError(
            f"config key 'transfer.head_init': '{transfer.head_init}' chooses among per-task heads; with "
            "agent.heads: shared the one conditioned head is transferred as it is; leave head_init out"
        )
    if transfer.probe_episodes != TransferConfig().probe_episodes and transfer.head_init != "probe":
        raise ConfigError(
            f"config key 'transfer.probe_episodes': applies only with transfer.head_init: probe (here "
            f"'{transfer.head_init}': no probe runs); set head_init: probe, or leave probe_episodes out"
        )
    if runner.address is not None and runner.backend != "ray":
        raise ConfigError(
            f"config key 'runner.address': applies only with runner.backend: ray (here '{runner.backend}': the runs "
            "would train on this machine); set backend: ray, or leave address out"
        )


MAX_EVALUATIONS = 200
"""Evaluations a run above which :func:`evaluation_schedule_warning` warns (the shipped configs: 7 to 31)."""


def evaluation_schedule_warning(config: ExperimentConfig) -> str:
    """A warning where ``evaluation.every`` (target steps, not episodes) makes a curve of two points or of
    hundreds, or "". At or above ``transfer.timesteps`` each run is evaluated at step 0 and at the end of its
    budget only, and its AUC and time to threshold rest on those two points; a few steps apart, each run is
    evaluated thousands of times, ``evaluation.episodes`` episodes each, and the evaluations can take far longer
    than the training (a deterministic evaluation is repeated, not run, where the policy has not changed since
    the last one, as PPO's between its updates; SAC's and DQN's change every few steps)."""
    ev, budget = config.evaluation, config.transfer.timesteps
    points = len(range(0, budget, ev.every)) + 1  # the Evaluator's checkpoints: 0, every, ..., and the budget
    if ev.every >= budget:
        return (
            f"warning: evaluation.every ({ev.every:,} target steps) is not below transfer.timesteps ({budget:,}): "
            "each run is evaluated at step 0 and at its end only, so its AUC and time to threshold rest on two points"
        )
    if points > MAX_EVALUATIONS:
        return (
            f"warning: evaluation.every ({ev.every:,} target steps) evaluates each run {points:,} times, "
            f"{ev.episodes} episode(s) each, over transfer.timesteps {budget:,}: the evaluations may take far "
            f"longer than the training (every is counted in target steps, not episodes; a curve needs a few "
            f"dozen points)"
        )
    return ""


def measure_envs(setup: Setup) -> EnvBehaviour:
    """What the experiment's tasks' envs do now (:mod:`rltransfer.records.env_behaviour`): one env a task, its
    spaces, time limit and two rollouts of 50 seeded steps (a rollout is kept where the second repeats the first)."""
    from rltransfer.envs.behaviour import rollout
    from rltransfer.envs.checks import time_limit
    from rltransfer.spaces_json import space_to_json

    tasks = {}
    for task in list({t.name: t for t in setup.sources + setup.targets}.values()):
        env = setup.family.make(task)
        try:
            first, again = rollout(env), rollout(env)
            spaces = {"observation_space": space_to_json(env.observation_space),
                      "action_space": space_to_json(env.action_space)}  # fmt: skip
            limit = time_limit(env)
        finally:
            env.close()
        repeated = {"observations": first.sums(), "rewards": first.rewards, "ends": first.ends}
        tasks[task.name] = TaskBehaviour.model_validate(
            {"params": dict(task.params), "time_limit": limit, **spaces, **(repeated if first.same_as(again) else {})}
        )
    parameters = {p.name: [p.default, p.low, p.high] for p in setup.family.parameters.values()}
    return EnvBehaviour(family=setup.family.name, parameters=parameters, tasks=tasks)


def unseeded_warning(envs: EnvBehaviour) -> str:
    """A warning naming the experiment's tasks whose env does not repeat itself from the same reset seed and
    actions (it draws from a generator ``reset(seed=...)`` does not seed), or "": their runs cannot be repeated
    or verified, and their evaluation episodes are not the same for every strategy and seed, as the protocol
    has them (``envs``: :func:`measure_envs`)."""
    failed = [name for name, task in envs.tasks.items() if task.observations is None]
    if not failed:
        return ""
    return (
        f"warning: task(s) {', '.join(failed)} of family '{envs.family}' run differently from the same reset "
        "seed and actions: their runs will not repeat (nor verify), and their evaluation episodes differ between "
        "strategies and seeds; the env should draw every random number from self.np_random, which "
        "reset(seed=...) seeds, and carry nothing from one episode into the next (rltransfer families --check "
        "tests it)"
    )


def check_encoder_type(config: ExperimentConfig) -> None:
    """``agent.encoder.type`` must be a registered encoder."""
    from rltransfer.agents import encoder_types

    known = encoder_types()
    if config.agent.encoder.type not in known:
        raise ConfigError(
            f"config key 'agent.encoder.type': '{config.agent.encoder.type}' unknown"
            f"{did_you_mean(config.agent.encoder.type, known)}; allowed: {', '.join(known)}"
        )


def check_encoder(config: ExperimentConfig, family: Family, task: Task) -> None:
    """The encoder must accept its arguments and the tasks' observations: built on torch's meta device,
    which checks its sizes against the observation space and allocates and draws nothing."""
    import torch

    from rltransfer.agents import encoder_types
    from rltransfer.envs.images import agent_view

    enc = config.agent.encoder.model_dump()
    cls = encoder_types()[enc.pop("type")]
    env = agent_view(family.make(task))
    try:
        with torch.device("meta"):
            cls(env.observation_space, **enc)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config key 'agent.encoder': {config.agent.encoder.type} encoder: {err}") from None
    finally:
        env.close()
    if "progressive" in config.transfer.strategies and config.agent.encoder.type != "mlp":
        raise ConfigError(
            "config key 'transfer.strategies': 'progressive' builds its new column from MLP layers; "
            f"it needs agent.encoder.type mlp, not {config.agent.encoder.type}"
        )


def check_thresholds(config: ExperimentConfig, family: Family, tasks: Sequence[Task]) -> None:
    """``evaluation.thresholds`` names tasks (of the experiment or its family: a typo is not ignored), and every
    source and target task has a threshold (the config's, else the family's, else its Gymnasium spec's): the
    pre-training's source scores and every run's time to threshold need one, and without this check its
    absence was found after the experiment's directory was made."""
    names = list(dict.fromkeys([t.name for t in tasks]))
    for name in config.evaluation.thresholds:
        if name not in names and name not in family.tasks:
            raise ConfigError(
                f"config key 'evaluation.thresholds': '{name}' is not a task of this experiment or of family "
                f"'{family.name}'{did_you_mean(name, [*names, *family.tasks])}; this experiment's tasks: "
                f"{', '.join(names)}"
            )
    for task in tasks:
        if task.name in config.evaluation.thresholds:
            continue
        try:
            family.reward_threshold(task)
        except TaskError as err:
            raise ConfigError(
                f"config key 'evaluation.thresholds': no return threshold for task '{task.name}' ({err}); give "
                f"one, as 'evaluation.thresholds: {{{task.name}: ...}}', or the family's reward_threshold"
            ) from None


def check_episodes_end(family: Family, tasks: Sequence[Task]) -> None:
    """Every task's episodes end: its env has a time limit, or a random policy's episode ends within the longest
    episode an evaluation runs. An endless env was found at the experiment's random baseline (a minute later, its
    directory made) or, from ``rltransfer pretrain``, at the end of the pre-training. Costs one env build a task,
    and one random episode where no time limit is found (MiniGrid's envs end episodes on their own)."""
    from rltransfer.envs import checks
    from rltransfer.envs.family import MAX_EPISODE_STEPS

    _passed(checks.check_episodes_end(family, MAX_EPISODE_STEPS, _each(tasks)), "config key 'family'")


def check_own_vector_build(family: Family) -> None:
    """A family's vector build, where it is not rltransfer's own pair of build and vector build (those are tested),
    gives the family's envs' results bit for bit, alone and in a batch of seeds
    (:func:`rltransfer.envs.vector_check.check_vector_build`): every run steps the envs with it. Once an
    experiment, before anything is written (about a second for a family of a few classic-control tasks)."""
    from rltransfer.envs.vector_check import check_vector_build

    if family.vector is None or all(
        getattr(f, "__module__", "").startswith("rltransfer.") for f in (family.build, family.vector)
    ):
        return
    _passed(check_vector_build(family), f"config key 'family': family '{family.name}''s vector build")


def check_builds(family: Family, tasks: Sequence[Task]) -> None:
    """Every task's env builds: a family's build or env that refuses a task's parameters is told in its own words
    (:func:`rltransfer.envs.checks.check_builds`), not as a traceback from the first check that built it."""
    from rltransfer.envs import checks

    _passed(checks.check_builds(family, _each(tasks)), "config keys 'source_tasks'/'target_tasks'")


def check_steps(family: Family, tasks: Sequence[Task]) -> None:
    """Every task's env returns what SB3 takes, in one short seeded random rollout a task (a reward of one finite
    number, observations of its space: :func:`rltransfer.envs.checks.check_steps`), before anything is written:
    SB3 would stop on it with a traceback far from the env once the pre-training began; and keeps no running
    statistics of its observations or rewards (:func:`rltransfer.envs.checks.check_wrappers`)."""
    from rltransfer.envs import checks
    from rltransfer.envs.behaviour import STEPS

    _passed(checks.check_steps(family, _each(tasks), STEPS), "config key 'family'")
    _passed(checks.check_wrappers(family, _each(tasks)), "config key 'family'")


def _each(tasks: Sequence[Task]) -> list[Task]:
    """The tasks, each once (a target may be a source's parameters under its name)."""
    return list({t.name: t for t in tasks}.values())


def _passed(found: Sequence[Check], keys: str) -> None:
    """A family check's failure refused as the config's, naming ``keys``."""
    (check,) = found
    if not check.ok:
        raise ConfigError(f"{keys}: {check.detail}")


def check_held_out(sources: Sequence[Task], targets: Sequence[Task]) -> None:
    """No target pre-trains: none is a source task by name, or by its parameters under another name."""
    seen = [t.name for t in targets if any(t.name == s.name or dict(t.params) == dict(s.params) for s in sources)]
    if seen:
        raise ConfigError(
            f"config key 'target_tasks': {seen} also pre-train (a source task by that name or with those "
            "parameters): a target is held out from the pre-training, and a transfer to a task the agent trained "
            "on measures no transfer"
        )


def check_strategies(config: ExperimentConfig) -> None:
    """Every strategy named in ``transfer`` must be registered, with known parameters."""
    from rltransfer.strategies import known_strategies

    known = known_strategies()
    repeated = sorted({n for n in config.transfer.strategies if config.transfer.strategies.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"config key 'transfer.strategies': strategies repeat: {repeated} (each is trained once a seed)"
        )
    for i, name in enumerate(config.transfer.strategies):
        if name not in known:
            raise ConfigError(
                f"config key 'transfer.strategies[{i}]': unknown strategy '{name}'{did_you_mean(name, known)}; "
                f"allowed: {', '.join(known)}"
            )
    for name in config.transfer.strategy_params:
        if name not in known:
            raise ConfigError(
                f"config key 'transfer.strategy_params.{name}': unknown strategy{did_you_mean(name, known)}; "
                f"allowed: {', '.join(known)}"
            )
    for i, name in enumerate(config.transfer.strategies):
        algos = known[name].algos
        if config.agent.algo not in algos:
            raise ConfigError(
                f"config key 'transfer.strategies[{i}]': '{name}' applies to {', '.join(algos)} only, not "
                f"{config.agent.algo}: {known[name].why_not or 'see the README, Strategies'}"
            )
    for name in dict.fromkeys(["scratch", *config.transfer.strategies, *config.transfer.strategy_params]):
        _check_params(config, name)


def _check_params(config: ExperimentConfig, name: str) -> None:
    """Strategy ``name``'s parameters, as its plan checks them (a ConfigError names what is wrong)."""
    from rltransfer.strategies import COMPONENTS, get_strategy, strategy_params

    params = strategy_params(name, config.transfer.strategy_params.get(name))
    sides = [c for c in params["freeze"] or () if c in TRUNK_SIDES]
    if sides and config.agent.algo != "ppo":
        raise ConfigError(
            f"config key 'transfer.strategy_params.{name}.freeze': '{sides[0]}' is one side of PPO's "
            f"actor-critic trunk; {config.agent.algo} has none (freeze whole components: {', '.join(COMPONENTS)})"
        )
    try:
        get_strategy(name).plan(params)  # plans check their own parameters (ConfigError)
    except ConfigError as err:
        if str(err).startswith("config key"):
            raise
        raise ConfigError(f"strategy '{name}': {err}") from None
    except Exception:  # any other failure is the strategy's own: recorded in its runs
        pass


def import_modules(modules: Sequence[str], key: str = "imports") -> None:
    """Import ``modules`` (what they register becomes available); a clear error for one that fails. A module
    Python's path does not reach but that lies in the current directory (``my_env.py``, or a package) is
    imported from there, the directory put last on the path, as ``python -m`` would have put it first: the
    ``rltransfer`` command, like any installed script, does not have it on the path (the local pool's workers
    start with the same path)."""
    for i, name in enumerate(modules):
        try:
            _import_here_too(name)
        except Exception as err:  # ImportError, or an error the module raises while importing
            where = f"{key} {name}" if key.startswith("--") else f"config key '{key}[{i}]'"
            raise ConfigError(f"{where}: importing '{name}' failed: {type(err).__name__}: {err}") from None


def _import_here_too(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        top, here = name.split(".")[0], os.getcwd()
        lies_here = Path(here, f"{top}.py").is_file() or Path(here, top, "__init__.py").is_file()
        if err.name != top or not lies_here or here in sys.path:
            raise
        sys.path.append(here)
        importlib.import_module(name)


def resolve(config: ExperimentConfig) -> Setup:
    """Resolve ``config``'s family and its source and target tasks against the registries (importing
    ``imports`` and registering declared ``families`` first): what every step needs, at no cost; no env,
    network or SB3 model is built. :func:`validate` checks the rest, once, where an experiment starts."""
    import_modules(config.imports)
    for i, spec in enumerate(config.families):
        try:
            register_declared(spec.model_dump())
        except TaskError as err:
            raise ConfigError(f"config key 'families[{i}]': {err}") from None
    try:
        family = get_family(config.family)
    except TaskError as err:
        raise ConfigError(f"config key 'family': {err}") from None
    sources = _tasks(family, config.source_tasks, family.source_tasks, "source_tasks")
    if not sources:
        raise ConfigError("config key 'source_tasks': needs at least one task")
    targets = _tasks(family, config.target_tasks, list(family.target_tasks), "target_tasks")
    return Setup(config, family, sources, targets)


def setup_of(
    config: str | Path | Mapping[str, Any] | ExperimentConfig | Setup,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> Setup:
    """``config`` as a :class:`Setup`: a Setup as it is (resolved by the caller), anything else loaded
    and validated (:func:`validate`)."""
    if isinstance(config, Setup):
        if overrides:
            raise ValueError("overrides apply to a config, not to a resolved Setup")
        return config
    return validate(load_config(config, overrides))


def validate(config: ExperimentConfig) -> Setup:
    """:func:`resolve`, then everything else a run would find wrong later: targets held out from the sources,
    the encoder on the tasks' observations, the SB3 algorithm's arguments and values (judged on one task's
    env), the strategies and their parameters, every task's threshold, the tasks' spaces against the algorithm,
    what every task's env returns in 50 seeded random steps. Builds envs to read their spaces and step them, and no
    model (no weights allocated, no random number drawn): once per experiment, pre-training or transfer
    started from the API, never per run of a grid."""
    setup = resolve(config)
    family, sources, targets = setup.family, setup.sources, setup.targets
    check_held_out(sources, targets)
    check_builds(family, sources + targets)  # before any check that builds a task's env
    from rltransfer.envs import task_layout

    check_encoder_type(config)
    check_inert_settings(config)
    check_hyperparams(config)
    check_strategies(config)
    check_thresholds(config, family, sources + targets)
    try:
        layout = task_layout(family, sources + targets)
    except TaskError as err:
        raise ConfigError(f"config keys 'source_tasks'/'target_tasks': {err}") from None
    check_observation_space(family, layout.observation)
    check_action_space(config, family, layout.action)
    check_steps(family, sources + targets)  # before any check that steps an env beyond Gymnasium's API
    check_episodes_end(family, sources + targets)
    check_encoder(config, family, sources[0])
    if config.agent.normalize and not isinstance(layout.observation, spaces.Box):
        reads = "reads its 0/1 entries" if isinstance(layout.observation, spaces.MultiBinary) else "one-hot encodes it"
        raise ConfigError(
            f"config key 'agent.normalize': observation statistics are kept for Box observations; family "
            f"'{family.name}' observes {layout.observation}, which the policy {reads} (nothing to normalise): use false"
        )
    check_mixed_spaces(config, family, sources, targets, layout)
    check_hyperparam_values(config, family, sources[0])
    return setup
