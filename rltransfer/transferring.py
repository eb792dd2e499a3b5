"""Transfer: build a target agent from a bundle with a named strategy, and train it on the target."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from rltransfer.agent_factory import policy_kwargs, resolve_hyperparams
from rltransfer.agents import get_algorithm
from rltransfer.agents.transferable import layout_space
from rltransfer.atomic import atomic_write_bytes, check_writable
from rltransfer.bundle import Bundle, load_bundle
from rltransfer.callbacks import callback_list, flatten, tensorboard_logger, write_hparams
from rltransfer.config import AgentConfig, ExperimentConfig, check_seed, check_steps
from rltransfer.envs import Family, MultiTaskVecEnv, Task, TaskError
from rltransfer.envs.mixed import same_layout
from rltransfer.errors import BundleError, ConfigError, UserInputError
from rltransfer.hardware import train_on_one_core
from rltransfer.loading import TargetSpec, kickstart_teacher, load_components, locate_target, stem_is_new
from rltransfer.normalization import obs_stats, with_obs_stats
from rltransfer.observation_keys import OBS, TASK
from rltransfer.probing import probe_sources
from rltransfer.records.bundle_manifest import TaskDims
from rltransfer.records.lineage import Lineage, ProbeRecord, markdown_report
from rltransfer.records.run_result import RESULT_FILE
from rltransfer.store import layout
from rltransfer.strategies import Plan, get_strategy, strategy_params
from rltransfer.target_env import RECORD, observation_record
from rltransfer.validation import Setup, resolve, setup_of


def target_env(
    bundle: Bundle, family: Family, spec: TargetSpec, n_envs: int, flat: bool | None = None
) -> MultiTaskVecEnv:
    """A vector env on the target task, conditioned like the bundle's sources, one head; its vector
    entries in one flat Box when ``flat`` (``None``: as the bundle's algorithm trains)."""
    if flat is None:
        flat = get_algorithm(bundle.algo).flat_observations(bundle.manifest.obs_normalization is not None)
    env = MultiTaskVecEnv(
        family,
        [spec.task],
        bundle.conditioning,
        envs_per_task=n_envs,
        onehot_indices=[spec.onehot_index],
        n_sources=len(bundle.task_names),
        n_heads=1,
        head_ids=[0],
        flat=flat,
    )
    want = bundle.policy.observation_space
    assert isinstance(want, spaces.Dict)  # a bundle's policy reads a Dict (a flat one: its entries)
    mixed = bundle.architecture.task_spaces is not None  # the target gets its own stem and head sizes
    # A flat policy reads the entries of one Box, each of the Box's dtype (float64 if the task's observation is):
    # the target's entries as such a policy sees them, as the bundle's were recorded.
    box = env.observation_space
    seen = layout_space(box, env.obs_layout) if env.obs_layout and isinstance(box, spaces.Box) else env.dict_space
    for key, space in seen.spaces.items():
        if key == TASK or (mixed and key == OBS):
            continue
        if not same_layout(space, want.spaces.get(key)):  # a float Box's bounds may differ: the policy reads none
            raise BundleError(
                f"bundle '{bundle.path}': observation '{key}' of target '{spec.task.name}' is {space}, "
                f"the bundle was trained on {want.spaces.get(key)}"
            )
    if mixed:
        if not isinstance(env.dict_space.spaces[OBS], spaces.Box) or len(env.dict_space.spaces[OBS].shape) != 1:
            raise BundleError(
                f"bundle '{bundle.path}': target '{spec.task.name}' needs a 1-D Box observation for its stem"
            )
        if type(env.action_space) is not type(bundle.policy.action_space):
            raise BundleError(
                f"bundle '{bundle.path}': target '{spec.task.name}' acts in {env.action_space}, the bundle's heads in "
                f"{bundle.policy.action_space}"
            )
    elif env.action_space != bundle.policy.action_space:
        raise BundleError(
            f"bundle '{bundle.path}': target '{spec.task.name}' has action space {env.action_space}, "
            f"the bundle's heads act in {bundle.policy.action_space}"
        )
    return env


def make_target_env(
    bundle: str | Path | Bundle, task: str | Mapping[str, Any] | Task, n_envs: int = 1, flat: bool | None = None
) -> VecEnv:
    """A vector env on ``task`` whose observations are conditioned as the bundle's sources were
    (and normalised with its statistics, if any): what a bundle's components expect.

    :param flat: the observation's vector entries in one Box (``obs_layout`` names them) rather than a
        Dict; ``None``: as the bundle's algorithm trains (flat for DQN and SAC without normalisation).
        ``False`` suits SB3's ``MultiInputPolicy``.
    """
    from rltransfer.envs import family_of

    n_envs = check_steps(n_envs, "n_envs")
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    family = family_of(bundle.family, bundle.manifest.family_spec)
    spec = locate_target(bundle, family, family.task(task, where="target"))
    env = target_env(bundle, family, spec, n_envs, flat)
    return with_obs_stats(env, bundle.manifest.obs_normalization, training=False)


@dataclass
class TransferResult:
    """A trained (or, for ``zero_shot``, untouched) target agent and its lineage."""

    model: BaseAlgorithm
    env: VecEnv
    out_dir: Path | None
    lineage: Lineage


def _check_fits(cfg: ExperimentConfig, bundle: Bundle) -> None:
    if bundle.family != cfg.family:
        raise BundleError(
            f"bundle '{bundle.path}' was pre-trained on family '{bundle.family}', the config uses '{cfg.family}'"
        )
    if bundle.algo != cfg.agent.algo:
        raise BundleError(
            f"bundle '{bundle.path}' was pre-trained with {bundle.algo}, the config uses {cfg.agent.algo}"
        )
    # A target agent is built as the bundle's components are: a config that says otherwise would be ignored.
    arch = bundle.architecture
    try:  # the bundle's, with the defaults of this version's config (a bundle records what it was built with)
        agent = AgentConfig.model_validate(
            {**cfg.agent.model_dump(), "encoder": arch.encoder, "trunk": arch.trunk, "heads": arch.heads}
        )
        built = {"encoder": agent.encoder.model_dump(), "trunk": agent.trunk.model_dump()}
    except ValueError:
        built = {"encoder": arch.encoder, "trunk": arch.trunk}
    for key, theirs, ours in [
        ("agent.encoder", built["encoder"], cfg.agent.encoder.model_dump()),
        ("agent.trunk", built["trunk"], cfg.agent.trunk.model_dump()),
        ("agent.heads", arch.heads, cfg.agent.heads),
        ("conditioning", bundle.conditioning, cfg.conditioning),
        ("agent.normalize", bundle.manifest.obs_normalization is not None, cfg.agent.normalize),
    ]:
        if theirs != ours:
            raise BundleError(
                f"bundle '{bundle.path}' was pre-trained with {key} {_shown(theirs)}, the config has "
                f"{_shown(ours)}: a target agent is built as the bundle was, so the config's would be ignored; "
                f"set {key} as the bundle has it (or pre-train with this config)"
            )


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list, bool)) else str(value)


def plan_for(cfg: ExperimentConfig, bundle: Bundle, strategy: str) -> tuple[dict[str, Any], Plan]:
    """The strategy's parameters (its defaults filled in) and its plan on this bundle: with
    ``transfer.head_init: fresh``, the target head is new, not transferred, and trains at the full rate."""
    params = strategy_params(strategy, cfg.transfer.strategy_params.get(strategy))
    plan = get_strategy(strategy).plan(params)
    if cfg.transfer.head_init == "fresh" and bundle.architecture.heads == "per_task" and "heads" in plan.load:
        plan = replace(
            plan,
            load=[c for c in plan.load if c != "heads"],
            lr_mults={c: m for c, m in plan.lr_mults.items() if c != "heads"},
        )
    return params, plan


def _choose_head(
    cfg: ExperimentConfig, setup: Setup, bundle: Bundle, target: Task, plan: Plan, seed: int
) -> tuple[TargetSpec, ProbeRecord | None]:
    """Where the target stands among the sources, and which source head it starts from: the nearest by
    context, or with ``transfer.head_init: probe`` the one that scores best on the target (its record)."""
    spec = locate_target(bundle, setup.family, target)
    probing = cfg.transfer.head_init == "probe" and bundle.architecture.heads == "per_task"
    if not (probing and ("heads" in plan.load or plan.teacher)):
        return spec, None
    if bundle.architecture.task_spaces is not None:
        raise ConfigError(
            "config key 'transfer.head_init': 'probe' needs source tasks of one observation and action space; "
            "allowed here: fresh, mean, nearest"
        )
    order = [spec.nearest] + [n for n in bundle.task_names if n != spec.nearest]
    probe = probe_sources(
        bundle, setup.family, target, spec.onehot_index, order, cfg.transfer.probe_episodes, seed,
        deterministic=cfg.evaluation.deterministic,
    )  # fmt: skip
    spec = replace(spec, nearest=probe.source, nearest_index=bundle.task_names.index(probe.source))
    return spec, ProbeRecord(**asdict(probe), nearest_by_context=order[0])


def _policy_kwargs(bundle: Bundle, target: Task, plan: Plan, spec: TargetSpec, mt_env: MultiTaskVecEnv) -> dict:
    """SB3 ``policy_kwargs`` of the target agent: the bundle's architecture with the target's head (and
    its own stem and head sizes where the tasks' spaces differ), frozen and scaled as planned."""
    arch = bundle.architecture.for_tasks([target.name])
    if arch.task_spaces is not None:
        layout = mt_env.layout
        own = TaskDims(obs_dims=[layout.obs_dims[0]], action_dims=[layout.action_dims[0]])
        arch = arch.model_copy(update={"task_spaces": own})
    kwargs = policy_kwargs(arch, plan.frozen, plan.lr_mults)
    kwargs.update(adapters=plan.adapters, obs_layout=mt_env.obs_layout)
    if "encoder" in plan.load and stem_is_new(bundle, spec, mt_env.layout.obs_dims[0]):
        kwargs["new_stems"] = True
    return kwargs


def _teacher_kwargs(
    bundle: Bundle, target: Task, plan: Plan, spec: TargetSpec, mt_env: MultiTaskVecEnv, head_init: str
) -> tuple[dict[str, Any], str | None]:
    """The algorithm's keyword arguments of the plan, with the kickstarting teacher where it has one (a
    source head of the target's spaces), and which head teaches."""
    algo_kwargs = dict(plan.algo_kwargs)
    if not plan.teacher:
        return algo_kwargs, None
    mine = None
    spaces_ = bundle.architecture.task_spaces
    if spaces_ is not None:
        i = spec.nearest_index
        mine = (int(mt_env.layout.obs_dims[0]), int(mt_env.layout.action_dims[0]))
        theirs = (int(spaces_.obs_dims[i]), int(spaces_.action_dims[i]))
        if mine != theirs:
            raise BundleError(
                f"bundle '{bundle.path}': kickstart needs a teacher head of the target's spaces; the nearest source "
                f"'{spec.nearest}' has {theirs[0]} observations and {theirs[1]} actions, "
                f"target '{target.name}' {mine[0]} and {mine[1]}"
            )
    teacher, teacher_head, source = kickstart_teacher(bundle, spec, head_init, mine)
    algo_kwargs.update(teacher=teacher, teacher_head=teacher_head)
    return algo_kwargs, source


def _hyperparams(cfg: ExperimentConfig, bundle: Bundle, plan: Plan, spec: TargetSpec) -> dict[str, Any]:
    hyper = resolve_hyperparams(cfg.agent.hyperparams)
    ent_coefs = bundle.manifest.ent_coefs
    if ent_coefs and "heads" in plan.load and hyper.get("ent_coef", "auto") == "auto":
        # SAC: the target's entropy coefficient starts where its head's source task ended
        # (SB3's default, 1.0, would swamp a transferred policy's first updates).
        src = "shared" if bundle.architecture.heads == "shared" else spec.nearest
        hyper["ent_coef"] = f"auto_{ent_coefs[src]}"
    return hyper


def build_target_agent(
    cfg: ExperimentConfig,
    setup: Setup,
    bundle: Bundle,
    target: Task,
    strategy: str,
    seed: int,
) -> tuple[BaseAlgorithm, VecEnv, Lineage]:
    """The target agent of ``strategy`` (weights loaded, frozen as planned), its env, its lineage."""
    _check_fits(cfg, bundle)
    algo = get_algorithm(bundle.algo)
    params, plan = plan_for(cfg, bundle, strategy)
    train_on_one_core()
    spec, probe = _choose_head(cfg, setup, bundle, target, plan, seed)
    mt_env = target_env(bundle, setup.family, spec, cfg.transfer.n_envs)
    env: VecEnv = with_obs_stats(
        mt_env, bundle.manifest.obs_normalization, training=plan.train, adapt_obs="encoder" not in plan.frozen,
        fresh=not plan.uses_bundle_obs_stats,
    )  # fmt: skip
    algo_kwargs, teacher_source = _teacher_kwargs(bundle, target, plan, spec, mt_env, cfg.transfer.head_init)
    model = (plan.algo_type() or algo.algo_class)(
        plan.policy_type() or algo.policy_class,
        env,
        policy_kwargs=_policy_kwargs(bundle, target, plan, spec, mt_env),
        seed=seed,
        device="cpu",
        verbose=0,
        **_hyperparams(cfg, bundle, plan, spec),
        **algo_kwargs,
    )
    lineage = Lineage(
        bundle=str(bundle.path),
        bundle_sha256=bundle.checksum,
        bundle_timesteps=bundle.manifest.timesteps,
        family=cfg.family,
        target=target.to_dict(),
        split=setup.family.split_of(target, [t.params | {"name": t.name} for t in bundle.source_tasks]),
        nearest_source=spec.nearest,  # the probe's choice where one ran
        strategy=strategy,
        strategy_params=params,
        trains=plan.train,
        head_init=cfg.transfer.head_init,
        seed=seed,
        components=load_components(model.policy, bundle, plan, spec, cfg.transfer.head_init),
        **({"teacher": teacher_source} if teacher_source is not None else {}),
        **({"probe": probe} if probe is not None else {}),
    )
    return model, env, lineage


def transfer(
    config: str | Path | Mapping[str, Any] | ExperimentConfig | Setup,
    bundle: str | Path | Bundle,
    target: str | Mapping[str, Any] | Task,
    strategy: str,
    seed: int = 0,
    timesteps: int | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    out_dir: str | Path | None = None,
    callbacks: MaybeCallback | tuple[BaseCallback, ...] = (),
    progress: bool = False,
    save: bool = True,
    tb_dir: str | Path | None = None,
) -> TransferResult:
    """Build the target agent of ``strategy`` from ``bundle`` and train it on ``target``.

    :param config: a YAML path, a dict or an :class:`ExperimentConfig` (hyperparameters,
        ``transfer.head_init``, ``transfer.strategy_params``...), validated here; or a
        :class:`~rltransfer.validation.Setup` the caller resolved (a run of a grid), used as it is.
    :param bundle: a bundle directory or a loaded :class:`~rltransfer.bundle.Bundle`.
    :param target: a task name of the family, a parameter dict, or a Task.
    :param strategy: a registered strategy name (``rltransfer.strategies.STRATEGIES``).
    :param seed: the run's seed.
    :param timesteps: target steps (default ``transfer.timesteps``).
    :param out_dir: where ``model.zip``, ``lineage.json`` and ``tb/`` go (default
        ``<output_dir>/<name>/runs/<target>/<strategy>/seed-<seed>``).
    :param callbacks: extra SB3 callbacks (an evaluator, say): what SB3's ``learn`` takes (one, a list, a
        function).
    :param save: write the model, lineage and TensorBoard logs (False: nothing is written anywhere).
    :param tb_dir: where the TensorBoard events go (default ``<out_dir>/tb``; a grid's runs: the
        experiment's tree, :func:`rltransfer.store.layout.run_tb`).
    """
    callbacks = callback_list(callbacks)
    run = prepare_transfer(setup_of(config, overrides), bundle, target, strategy, seed, timesteps, out_dir, callbacks, save, tb_dir)  # fmt: skip
    if run.lineage.trains:
        run.model.learn(run.steps, callback=callbacks, progress_bar=progress, reset_num_timesteps=not run.charged)
    else:  # zero_shot: never updated; evaluators still score the untouched agent over the budget
        for cb in callbacks:
            if hasattr(cb, "evaluate_without_training"):
                cb.evaluate_without_training(run.model, run.budget)
    return finish_transfer(run)


@dataclass
class TargetRun:
    """A target agent built and ready to learn (:func:`prepare_transfer`): what :func:`transfer` trains, or
    the batched engine trains with other seeds of its cell (:mod:`rltransfer.execution.job`)."""

    model: BaseAlgorithm
    env: VecEnv
    lineage: Lineage
    bundle: Bundle
    budget: int
    charged: int
    """Target steps a probe of source heads took before training (0: none)."""
    out: Path | None

    @property
    def steps(self) -> int:
        """The steps it learns: the budget less the probe's."""
        return self.budget - self.charged


def prepare_transfer(
    setup: Setup,
    bundle: str | Path | Bundle,
    target: str | Mapping[str, Any] | Task,
    strategy: str,
    seed: int = 0,
    timesteps: int | None = None,
    out_dir: str | Path | None = None,
    callbacks: Sequence[BaseCallback] = (),
    save: bool = True,
    tb_dir: str | Path | None = None,
    in_experiment: bool = False,
) -> TargetRun:
    """:func:`transfer` up to its training: the agent built, its logger and lineage set, a probe's steps
    charged to ``callbacks``. Only an experiment's own run (``in_experiment``) may write where a result is (its
    own, stale) or at an experiment directory's top."""
    cfg = setup.config
    seed = check_seed(seed)
    timesteps = check_steps(timesteps, whole_floats=True) if timesteps is not None else None
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    try:
        task = setup.family.task(target, where="target")
    except TaskError as err:
        raise ConfigError(str(err)) from None
    budget = cfg.transfer.timesteps if timesteps is None else int(timesteps)
    if budget <= 0:
        raise ConfigError(f"timesteps must be > 0, got {budget}")
    model, env, lineage = build_target_agent(cfg, setup, bundle, task, strategy, seed)
    lineage = lineage.model_copy(update={"timesteps": budget})
    charged = lineage.probe.steps if lineage.probe is not None else 0
    if charged >= budget:
        raise ConfigError(
            f"the probe of source heads took {charged} target steps, the budget is {budget}: raise "
            "'transfer.timesteps' or lower 'transfer.probe_episodes'"
        )
    # Saved with the model as plain JSON (PPO.load(...).lineage is a dict, readable without rltransfer's types).
    model.lineage = lineage.to_json()  # type: ignore[attr-defined]
    # How its observations are built, from now: a model a callback saves (a checkpoint, EvalCallback's best) has it.
    setattr(model, RECORD, observation_record(env, bundle, lineage.target, final=False).to_json())
    out = None
    if save:
        out = Path(out_dir) if out_dir is not None else layout.run_out(cfg.run_dir, task.name, strategy, seed)
        if not in_experiment and (out / RESULT_FILE).is_file():
            raise UserInputError(
                f"'{out}' holds a finished run of an experiment ({RESULT_FILE}): this run would replace its model "
                "and lineage and leave its result describing another agent; write to another directory (--out)"
            )
        if not in_experiment:
            layout.check_not_experiment_top(out, "this run's model, lineage and TensorBoard events", "--out")
        check_writable(out)
        model.set_logger(tensorboard_logger(Path(tb_dir) if tb_dir is not None else out / "tb"))
        _log_lineage(model, lineage)
        hparams = {
            "family": cfg.family, "conditioning": bundle.conditioning, "target": task.name, "split": lineage.split,
            "strategy": strategy, "seed": seed, "head_init": cfg.transfer.head_init, "timesteps": budget,
            **flatten(lineage.strategy_params, "strategy."), **flatten(cfg.agent.hyperparams, "agent.hyperparams."),
        }  # fmt: skip
        write_hparams(model.logger, hparams)
    else:  # nothing written: SB3's own logger would make a folder in the temp dir for each call
        model.set_logger(Logger(folder=None, output_formats=[]))
    if charged:
        _charge_probe(model, charged, callbacks)
    return TargetRun(model, env, lineage, bundle, budget, charged, out)


def finish_transfer(run: TargetRun) -> TransferResult:
    """:func:`transfer` after its training: the model, its observation record and lineage saved."""
    model, env, lineage, out = run.model, run.env, run.lineage, run.out
    # How its observations are built, saved with the model: wrap_target_env needs nothing else.
    setattr(model, RECORD, observation_record(env, run.bundle, lineage.target).to_json())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / "model.zip")
        lineage.write(out)
        stats = obs_stats(env)
        if stats is not None:  # SB3's save does not keep them: the agent is only valid with them
            atomic_write_bytes(out / "obs_normalization.json", json.dumps(stats.to_json(), indent=2).encode())
        model.logger.close()
    return TransferResult(model, env, out, lineage)


def _charge_probe(model: BaseAlgorithm, charged: int, callbacks: Sequence[BaseCallback]) -> None:
    """A probe's steps are the run's first ``charged`` target steps: the agent that starts target
    training (the chosen head) is first scored at that step, and trains from it. No checkpoint before it
    is scored: no agent of the run existed yet (the AUC counts nothing there; the probe's episodes ran
    the source heads, not this agent)."""
    for cb in callbacks:
        if hasattr(cb, "start_at"):
            cb.start_at(model, charged)
    model.num_timesteps = charged
    if hasattr(model, "learning_starts"):  # off-policy: updates start after as many of its own samples
        model.learning_starts += charged


def eval_env_factory(cfg: ExperimentConfig | Setup, bundle: str | Path | Bundle, target: Any, episodes: int):
    """A function building the evaluation env of a run: the target, conditioned as in training,
    up to 32 episodes side by side, observation statistics frozen (synced from training)."""
    from rltransfer.evaluation import MAX_PARALLEL

    setup = cfg if isinstance(cfg, Setup) else resolve(cfg)

    def make() -> VecEnv:
        b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        spec = locate_target(b, setup.family, setup.family.task(target, where="target"))
        env = target_env(b, setup.family, spec, min(episodes, MAX_PARALLEL))
        return with_obs_stats(env, b.manifest.obs_normalization, training=False)

    return make


def _log_lineage(model: BaseAlgorithm, lineage: Lineage) -> None:
    """The load report as a Markdown table in TensorBoard's text tab."""
    for fmt in model.logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            fmt.writer.add_text("transfer/lineage", markdown_report(lineage), 0)
            fmt.writer.flush()
