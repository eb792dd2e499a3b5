"""Multi-task pre-training: one SB3 PPO over the source tasks, then a bundle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.agent_factory import architecture, build_model
from rltransfer.agents import get_algorithm
from rltransfer.atomic import check_writable
from rltransfer.baselines import threshold
from rltransfer.bundle import MANIFEST_FILE, MODEL_FILE, save_bundle
from rltransfer.callbacks import PerTaskLogger, callback_list, flatten, tensorboard_logger, write_hparams
from rltransfer.config import ExperimentConfig, check_seed
from rltransfer.envs import MultiTaskVecEnv, Task, TaskSpaces, task_layout
from rltransfer.errors import EndlessEpisode, UserInputError
from rltransfer.evaluation import EpisodeLimit, sampling_rng
from rltransfer.normalization import obs_stats, with_obs_stats
from rltransfer.observation_keys import OBS
from rltransfer.records.observation_stats import ObservationStats
from rltransfer.store import layout as dirs
from rltransfer.store.reuse import COPIED_FILE
from rltransfer.validation import Setup, setup_of

UNEVALUATED_FILE = "unevaluated-model.zip"
"""Where a pre-training whose final evaluation met an endless episode keeps its trained model (no bundle: the
bundle holds that evaluation)."""


@dataclass
class PretrainResult:
    """Where the bundle went, and the final per-source-task evaluation."""

    bundle_path: Path
    tb_dir: Path
    evaluation: dict[str, dict[str, float]]
    timesteps: int


def source_env(
    setup: Setup, envs_per_task: int, tasks: Iterable[Task] | None = None, pad_to: TaskSpaces | None = None
) -> MultiTaskVecEnv:
    """A vector env over source tasks, each routed to its own head and one-hot index; some of them
    (``tasks``) take the layout of all (``pad_to``, computed when not given)."""
    names = [t.name for t in setup.sources]
    subset = tasks is not None
    tasks = list(tasks) if tasks is not None else setup.sources
    if subset and pad_to is None:
        pad_to = task_layout(setup.family, setup.sources)
    idx = [names.index(t.name) for t in tasks]
    agent = setup.config.agent
    return MultiTaskVecEnv(
        setup.family, tasks, setup.config.conditioning, envs_per_task,
        onehot_indices=idx, n_sources=len(names), n_heads=len(names), head_ids=idx, pad_to=pad_to,
        flat=get_algorithm(agent.algo).flat_observations(agent.normalize),
    )  # fmt: skip


def evaluate_sources(model, setup: Setup, stats: ObservationStats | None, episodes: int, seed: int):
    """Mean and std of the return on every source task, evaluated as the config's ``evaluation``
    says (the policy's mode, or actions sampled from a generator seeded by ``seed``)."""
    deterministic = setup.config.evaluation.deterministic
    out = {}
    layout = task_layout(setup.family, setup.sources)
    for task in setup.sources:
        env = EpisodeLimit(with_obs_stats(source_env(setup, 1, [task], layout), stats, training=False))
        env.seed(seed + 10_000)
        with sampling_rng(seed + 10_000):
            mean, std = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=deterministic)
        out[task.name] = {"mean_return": float(np.mean(mean)), "std_return": float(np.mean(std))}
        env.close()
    return out


def pretrain_dir(cfg: ExperimentConfig, seed: int) -> Path:
    """Where pre-training seed ``seed`` of an experiment writes ``bundle/`` and ``tb/``."""
    return dirs.pretrain_dir(cfg.run_dir, seed)


def pretrain(
    config: str | Path | Mapping[str, Any] | ExperimentConfig | Setup,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = False,
    echo: bool = False,
    extra_manifest: Mapping[str, Any] | None = None,
    tb_dir: str | Path | None = None,
    callbacks: MaybeCallback | tuple[BaseCallback, ...] = (),
    in_experiment: bool = False,
) -> PretrainResult:
    """Pre-train the multi-task agent on the config's source tasks and write a bundle.

    :param config: a YAML path, a dict, or an :class:`ExperimentConfig`, validated here; or a
        :class:`~rltransfer.validation.Setup` the caller resolved (an experiment's), used as it is.
    :param overrides: ``--set``-style overrides (``["pretrain.timesteps=2000"]``).
    :param seed: the pre-training seed.
    :param out_dir: where ``bundle/`` and ``tb/`` go (default ``<output_dir>/<name>/pretrain``,
        with ``seed-<k>/`` below it for seeds other than 0).
    :param progress: show a progress bar.
    :param echo: print the final per-task evaluation table.
    :param tb_dir: where the TensorBoard events go (default ``<out_dir>/tb``; an experiment's: its tree,
        :func:`rltransfer.store.layout.pretrain_tb`).
    :param callbacks: extra SB3 callbacks for the pre-training's ``learn`` (a ``CheckpointCallback``, your own
        logging), after rltransfer's per-task logger: what SB3's ``learn`` takes (one, a list, a function).
    :param in_experiment: an experiment's own pre-training, in its place in the experiment's directory (only it
        may replace a bundle there, or write at the directory's top).
    """
    seed = check_seed(seed)
    extra = callback_list(callbacks)
    setup = setup_of(config, overrides)
    cfg = setup.config
    out = Path(out_dir) if out_dir is not None else pretrain_dir(cfg, seed)
    bundle_dir = out / "bundle"
    tb_dir = Path(tb_dir) if tb_dir is not None else out / "tb"
    if not in_experiment:
        check_outside_experiments(out, bundle_dir)
    check_writable(out)
    (out / COPIED_FILE).unlink(missing_ok=True)  # trained here: no longer a copy of another experiment's
    names = [t.name for t in setup.sources]

    mt_env = source_env(setup, cfg.pretrain.envs_per_task)
    env: VecEnv = VecNormalize(mt_env, norm_obs_keys=[OBS]) if cfg.agent.normalize else mt_env
    arch = architecture(cfg.agent, names, mt_env.layout)
    model = build_model(cfg.agent, env, arch, seed, hyperparams=cfg.pretrain.hyperparams)
    model.set_logger(tensorboard_logger(tb_dir))
    hparams = {
        "family": cfg.family, "conditioning": cfg.conditioning, "sources": ",".join(names), "seed": seed,
        **flatten(cfg.agent.model_dump(), "agent."), "pretrain.timesteps": cfg.pretrain.timesteps,
    }  # fmt: skip
    write_hparams(model.logger, hparams)
    model.learn(cfg.pretrain.timesteps, callback=[PerTaskLogger(mt_env), *extra], progress_bar=progress)
    stats = obs_stats(env)
    try:
        evaluation = evaluate_sources(model, setup, stats, cfg.pretrain.eval_episodes, seed)
    except EndlessEpisode as err:  # the trained agent's episodes never end: keep what the training made
        kept = out / UNEVALUATED_FILE
        model.save(kept)
        raise EndlessEpisode(
            f"{err}; the pre-training's trained model is kept in '{kept}' ({type(model).__name__}.load reads it)"
        ) from None
    for name, res in evaluation.items():
        model.logger.record(f"pretrain/{name}/final_eval_return", res["mean_return"])
    model.logger.dump(model.num_timesteps)
    model.logger.close()

    save_bundle(
        bundle_dir,
        model.policy,
        {
            "family": cfg.family,
            **({"family_spec": setup.family.spec} if setup.family.spec else {}),  # a family declared as data
            "conditioning": cfg.conditioning,
            "source_tasks": [t.to_dict() for t in setup.sources],
            "algo": cfg.agent.algo,
            "architecture": arch,
            "obs_normalization": stats,
            "timesteps": int(model.num_timesteps),
            "seed": seed,
            "hyperparams": {**cfg.agent.hyperparams, **cfg.pretrain.hyperparams},
            "config_hash": cfg.hash(),
            "evaluation": evaluation,
            **({"ent_coefs": model.ent_coefs} if hasattr(model, "ent_coefs") else {}),
            **(extra_manifest or {}),
        },
    )
    model.save(bundle_dir / MODEL_FILE)
    env.close()
    if echo:
        print(format_evaluation(evaluation, setup))
    return PretrainResult(bundle_dir, tb_dir, evaluation, int(model.num_timesteps))


def check_outside_experiments(out: Path, bundle_dir: Path) -> None:
    """Refuse a standalone pre-training that would replace a bundle of an experiment (whose runs loaded it, and
    whose results would then describe another) or write at the top of an experiment directory."""
    dirs.check_not_experiment_top(out, "the pre-training's bundle and TensorBoard events", "out_dir=...")
    holder = dirs.experiment_holding(out)
    if holder is not None and (bundle_dir / MANIFEST_FILE).is_file():
        raise UserInputError(
            f"'{bundle_dir}' is a pre-training of the experiment in '{holder}', whose runs load it: this pre-training "
            "would replace it and leave their results describing another bundle; pre-train under another name "
            "(--set name=...) or into another directory (out_dir=... from Python), or run 'rltransfer experiment', "
            "which re-uses it"
        )


def format_evaluation(evaluation: Mapping[str, Mapping[str, float]], setup: Setup) -> str:
    lines = [f"{'source task':<24} {'mean return':>12} {'std':>8} {'threshold':>10}", "-" * 57]
    tasks = {t.name: t for t in setup.sources}
    for name, res in evaluation.items():
        thr = threshold(setup.family, tasks[name], setup.config.evaluation.thresholds)
        lines.append(f"{name:<24} {res['mean_return']:>12.1f} {res['std_return']:>8.1f} {thr:>10.1f}")
    return "\n".join(lines)
