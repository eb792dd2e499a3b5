"""Transfer strategies: named recipes that turn a bundle into a target agent.

A strategy says which components to load from the bundle, which to freeze, at which
learning-rate multipliers the rest train, and which policy and algorithm classes to use.
Register your own with :func:`register_strategy`; configs refer to strategies by name and
pass parameters through ``transfer.strategy_params.<name>``.
"""

from __future__ import annotations

import math
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from rltransfer.agents.component_names import FREEZABLE, PREFIXES, TRUNK_SIDES
from rltransfer.config import ONE_NAME, AgentConfig, is_one_name
from rltransfer.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import BasePolicy

COMPONENTS = tuple(PREFIXES)
ALGOS: tuple[str, ...] = get_args(AgentConfig.model_fields["algo"].annotation)
"""The algorithms a config may name (``agent.algo``); a strategy applies to all of them unless it says otherwise.
The registry and its plans need no torch (a report shows each strategy's parameters and hashes each run's plan):
the built-in plans name their classes by where they are imported from."""


@dataclass(frozen=True)
class Plan:
    """What a strategy does: loaded and frozen components, learning rates, classes. Immutable: a changed
    plan is a new one (``dataclasses.replace``)."""

    load: list[str]
    frozen: list[str] = field(default_factory=list)
    lr_mults: dict[str, float] = field(default_factory=dict)
    adapters: dict[str, Any] | None = None
    train: bool = True
    policy_class: type[BasePolicy] | str | None = None
    """``None``: the algorithm's multi-task policy. A class, or where to import it from (``"module:Name"``, read
    by ``pkgutil.resolve_name``): imported when the agent is built (:meth:`policy_type`), so that making a plan
    needs no torch (a report hashes every run's plan)."""
    algo_class: type[BaseAlgorithm] | str | None = None
    """``None``: the algorithm's class (:data:`rltransfer.agents.ALGORITHMS`). A class or ``"module:Name"``, as
    :attr:`policy_class`."""
    teacher: bool = False
    """Give the algorithm the bundle's policy as ``teacher`` (kickstarting)."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Components by their names, as a config's ``load`` and ``freeze`` are checked: a misspelt one loaded,
        froze or scaled nothing, silently."""
        for what, names, allowed in (
            ("load", self.load, COMPONENTS),
            ("frozen", self.frozen, FREEZABLE),
            ("lr_mults", list(self.lr_mults), COMPONENTS),
        ):
            unknown = [n for n in names if n not in allowed]
            if unknown:
                raise ConfigError(
                    f"its Plan's {what}: '{unknown[0]}' is not a component{did_you_mean(unknown[0], allowed)}; "
                    f"allowed: {', '.join(allowed)}"
                )
        frozen = set(self.frozen) | ({"trunk"} if set(TRUNK_SIDES) <= set(self.frozen) else set())
        if self.train and self.adapters is None and self.policy_class is None and set(COMPONENTS) <= frozen:
            raise ConfigError(
                f"freezes every component ({', '.join(self.frozen)}) and adds no adapters: nothing would train "
                "(the optimizer would have no parameters); zero_shot runs the pre-trained agent untrained"
            )

    @property
    def uses_bundle_obs_stats(self) -> bool:
        """Whether the target env normalises observations with the bundle's statistics (with
        ``agent.normalize``): they travel with the encoder, and a teacher sees what it was trained on.
        Otherwise the run starts fresh statistics, as SB3's VecNormalize does (``scratch``)."""
        return "encoder" in self.load or self.teacher

    @property
    def uses_bundle(self) -> bool:
        """Whether the run takes anything from the bundle (weights or a teacher); ``scratch`` does not."""
        return bool(self.load) or self.teacher

    def policy_type(self) -> type[BasePolicy] | None:
        """:attr:`policy_class`, imported where named (None: the algorithm's multi-task policy)."""
        return _imported(self.policy_class)

    def algo_type(self) -> type[BaseAlgorithm] | None:
        """:attr:`algo_class`, imported where named (None: the algorithm's class)."""
        return _imported(self.algo_class)


def _imported(ref: Any) -> Any:
    return pkgutil.resolve_name(ref) if isinstance(ref, str) else ref


@dataclass(frozen=True)
class Strategy:
    """A named strategy: ``plan(params) -> Plan`` and its parameters' defaults."""

    name: str
    plan: Callable[[Mapping[str, Any]], Plan]
    defaults: Mapping[str, Any]
    doc: str
    algos: tuple[str, ...] = ALGOS
    """Algorithms it applies to."""
    why_not: str = ""
    """Why it does not apply to the others (shown in the error)."""


STRATEGIES: dict[str, Strategy] = {}
# Parameters every strategy accepts: which components to load from the bundle, and which to freeze
# (a component, or one side of PPO's actor-critic trunk: ``trunk.pi`` or ``trunk.vf``).
COMMON = {"load": list(COMPONENTS), "freeze": None}


def register_strategy(
    name: str,
    defaults: Mapping[str, Any] | None = None,
    doc: str = "",
    overwrite: bool = False,
    algos: tuple[str, ...] = ALGOS,
    why_not: str = "",
):
    """Decorator: register ``fn(params) -> Plan`` as strategy ``name``.

    ``params`` holds ``defaults`` (plus ``load`` and ``freeze``) updated with the config's
    ``transfer.strategy_params.<name>``. ``algos``: the algorithms it applies to (``why_not``
    says why not the others); a config pairing it with another is refused.
    """

    if not is_one_name(name):
        raise ValueError(f"strategy name {name!r}: its runs' directory is named after it: expected {ONE_NAME}")

    def wrap(fn: Callable[[Mapping[str, Any]], Plan]) -> Callable[[Mapping[str, Any]], Plan]:
        if name in STRATEGIES and not overwrite:
            raise ValueError(f"a strategy named '{name}' is already registered (pass overwrite=True)")
        STRATEGIES[name] = Strategy(
            name, fn, {**COMMON, **(defaults or {})}, doc or (fn.__doc__ or "").strip(), tuple(algos), why_not
        )
        return fn

    return wrap


def known_strategies() -> dict[str, Strategy]:
    """Every strategy a config may name: rltransfer's, those registered, and those installed packages expose
    (their entry points loaded on the first call)."""
    _load_plugins()
    return STRATEGIES


def get_strategy(name: str) -> Strategy:
    if name not in known_strategies():
        raise ConfigError(
            f"unknown strategy '{name}'{did_you_mean(name, STRATEGIES)}; known strategies: {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[name]


def strategy_params(name: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The strategy's defaults updated with ``given``; unknown or ill-typed keys are named."""
    strategy = get_strategy(name)
    given = dict(given or {})
    unknown = sorted(set(given) - set(strategy.defaults))
    if unknown:
        raise ConfigError(
            f"config key 'transfer.strategy_params.{name}.{unknown[0]}': unknown parameter"
            f"{did_you_mean(unknown[0], strategy.defaults)}; "
            f"allowed: {', '.join(strategy.defaults)}"
        )
    params = {**strategy.defaults, **given}
    for key, allowed in (("load", COMPONENTS), ("freeze", FREEZABLE)):
        value = params[key]
        if value is None:
            continue
        if not isinstance(value, list) or not set(value) <= set(allowed):
            raise ConfigError(
                f"config key 'transfer.strategy_params.{name}.{key}': expected a list of {', '.join(allowed)}, "
                f"got {value!r}"
            )
    for key, default in strategy.defaults.items():
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConfigError(
                    f"config key 'transfer.strategy_params.{name}.{key}': expected a finite non-negative number, "
                    f"got {value!r}"
                )
    return params


def plan_of(name: str, given: Mapping[str, Any] | None) -> Plan | None:
    """The plan of strategy ``name`` with the config's parameters ``given``, or ``None`` where it
    cannot be made (an unknown name, bad parameters): that run fails on its own, where it is recorded."""
    try:
        return get_strategy(name).plan(strategy_params(name, given))
    except Exception:
        return None


def configured_plan(config: Mapping[str, Any], name: str) -> tuple[Mapping[str, Any] | None, Plan | None]:
    """Strategy ``name``'s parameters as the config's dict (a job's) gives them, and its plan (:func:`plan_of`)."""
    params = (config["transfer"].get("strategy_params") or {}).get(name)
    return params, plan_of(name, params)


def _frozen(params: Mapping[str, Any], default: list[str]) -> list[str]:
    return list(params["freeze"]) if params["freeze"] is not None else default


def _loaded(name: str, params: Mapping[str, Any]) -> list[str]:
    """The components a strategy that transfers weights loads: one at least (loading none, its runs would be
    ``scratch``'s under another name)."""
    if not params["load"]:
        raise ConfigError(
            f"config key 'transfer.strategy_params.{name}.load': {name} transfers the components it loads and "
            f"loads none: its runs would be scratch's; load one or more of {', '.join(COMPONENTS)}"
        )
    return list(params["load"])


@register_strategy("scratch", {"load": []})
def scratch(params: Mapping[str, Any]) -> Plan:
    """The baseline: the transferred agents' architecture and hyperparameters, random initialisation."""
    if params["load"]:
        raise ConfigError(
            f"config key 'transfer.strategy_params.scratch.load': scratch is the baseline and loads nothing (got "
            f"{params['load']!r}); strategies that load components: finetune, freeze_encoder, lr_scaled, ..."
        )
    return Plan(load=[], frozen=_frozen(params, []))


@register_strategy("zero_shot")
def zero_shot(params: Mapping[str, Any]) -> Plan:
    """The pre-trained policy acting on the target, never updated (the jumpstart reference)."""
    if params["freeze"]:
        raise ConfigError(
            f"config key 'transfer.strategy_params.zero_shot.freeze': zero_shot never trains, so nothing is frozen "
            f"(got {params['freeze']!r}); leave freeze out"
        )
    return Plan(load=_loaded("zero_shot", params), frozen=[], train=False)


@register_strategy("finetune")
def finetune(params: Mapping[str, Any]) -> Plan:
    """Load every transferable component and train all of them."""
    return Plan(load=_loaded("finetune", params), frozen=_frozen(params, []))


@register_strategy("freeze_encoder")
def freeze_encoder(params: Mapping[str, Any]) -> Plan:
    """Load all, freeze the encoder, train trunk and heads."""
    return Plan(load=_loaded("freeze_encoder", params), frozen=_frozen(params, ["encoder"]))


@register_strategy("heads_only")
def heads_only(params: Mapping[str, Any]) -> Plan:
    """Load all, freeze encoder and trunk, train the heads. With PPO, ``freeze: [encoder, trunk.pi]``
    keeps the actor's trunk and lets the critic's train."""
    return Plan(load=_loaded("heads_only", params), frozen=_frozen(params, ["encoder", "trunk"]))


@register_strategy("lr_scaled", {"lr_scale": 0.1})
def lr_scaled(params: Mapping[str, Any]) -> Plan:
    """Load all; transferred parameters train at ``lr_scale`` times the learning rate, new ones at 1x."""
    loaded = _loaded("lr_scaled", params)
    return Plan(load=loaded, frozen=_frozen(params, []), lr_mults={c: float(params["lr_scale"]) for c in loaded})


@register_strategy("adapter", {"rank": 4, "alpha": 8.0})
def adapter(params: Mapping[str, Any]) -> Plan:
    """Frozen transferred encoder and trunk with trainable low-rank adapters (LoRA); heads train."""
    if int(params["rank"]) < 1:
        raise ConfigError(f"config key 'transfer.strategy_params.adapter.rank': must be >= 1, got {params['rank']}")
    frozen = _frozen(params, ["encoder", "trunk"])
    sides = [c for c in frozen if c in TRUNK_SIDES]
    if sides:
        raise ConfigError(
            f"config key 'transfer.strategy_params.adapter.freeze': '{sides[0]}': adapters wrap whole "
            f"components; allowed: {', '.join(COMPONENTS)}"
        )
    return Plan(
        load=_loaded("adapter", params),
        frozen=frozen,
        adapters={"rank": int(params["rank"]), "alpha": float(params["alpha"]), "components": frozen},
    )


@register_strategy(
    "progressive",
    algos=("ppo",),
    why_not="its lateral connections are built for the actor-critic MLP of PPO's policy",
)
def progressive(params: Mapping[str, Any]) -> Plan:
    """A frozen pre-trained column plus a new column with lateral connections (Rusu et al. 2016)."""
    return Plan(
        load=_loaded("progressive", params),
        frozen=["encoder", "trunk"],
        policy_class="rltransfer.agents.progressive:ProgressivePolicy",
    )


@register_strategy(
    "kickstart",
    {"load": [], "beta": 1.0, "anneal": 0.5},
    algos=("ppo",),
    why_not="its distillation loss is added to PPO's on-policy update (for DQN and SAC, finetune or lr_scaled transfer the policy)",
)
def kickstart(params: Mapping[str, Any]) -> Plan:
    """PPO plus ``beta * KL(teacher || student)`` toward the pre-trained policy, annealed to zero
    over the first ``anneal`` fraction of the budget (Schmitt et al. 2018). The student is fresh
    by default (``load: []``); ``load: [encoder, trunk, heads]`` starts it from the bundle."""
    if not 0 <= float(params["anneal"]) <= 1:
        raise ConfigError(
            f"config key 'transfer.strategy_params.kickstart.anneal': must be in [0, 1], got {params['anneal']}"
        )
    return Plan(
        load=list(params["load"]),
        frozen=_frozen(params, []),
        algo_class="rltransfer.agents.transfer_ppo:KickstartPPO",
        teacher=True,
        algo_kwargs={"beta": float(params["beta"]), "anneal": float(params["anneal"])},
    )


ENTRY_POINTS = "rltransfer.strategies"
"""A package exposes strategies as ``name = "module:function"`` in this group; the function registers
them (:func:`register_strategy`) and is called once, at the first lookup of a strategy
(:func:`known_strategies`), not when this module is imported: a plugin module that imports it at its top
would otherwise be called while Python is still importing it."""

_plugins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    from importlib import metadata

    _plugins_loaded = True  # before loading: a plugin that looks a strategy up while it registers finds the others
    for ep in metadata.entry_points(group=ENTRY_POINTS):
        try:
            ep.load()()
        except Exception as err:  # a broken plugin is named, not hidden
            raise ConfigError(
                f"the strategy plugin '{ep.name}' ({ep.value}) failed to load: {type(err).__name__}: {err}"
            ) from None
