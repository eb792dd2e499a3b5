"""SB3 callbacks: per-task episode logging and hyperparameters for TensorBoard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure
from stable_baselines3.common.type_aliases import MaybeCallback

from rltransfer.envs import MultiTaskVecEnv
from rltransfer.errors import ConfigError


def callback_list(callbacks: MaybeCallback | tuple[BaseCallback, ...]) -> list[BaseCallback]:
    """Extra callbacks of a pre-training or a transfer as a list, from what SB3's ``learn(callback=...)`` takes:
    None, a callback, a list (or tuple) of callbacks, or a function (wrapped as SB3 wraps one, in its
    ``ConvertCallback``). Anything else is refused (ConfigError) before a model is built."""
    if callbacks is None:
        return []
    if isinstance(callbacks, BaseCallback):
        return [callbacks]
    if isinstance(callbacks, (list, tuple)):
        bad = [c for c in callbacks if not isinstance(c, BaseCallback)]
        if not bad:
            return list(callbacks)
        got = f"a list holding {bad[0]!r}"
    elif callable(callbacks):
        return [ConvertCallback(callbacks)]
    else:
        got = repr(callbacks)
    raise ConfigError(
        f"callbacks: expected an SB3 callback (a BaseCallback), a list of them, a function or None, as SB3's "
        f"learn takes; got {got}"
    )


class PerTaskLogger(BaseCallback):
    """Records ``<prefix>/<task>/rollout_return_mean100`` and ``rollout_length_mean100``: the mean of the task's
    last 100 training episodes (SB3's ``rollout/ep_rew_mean``, per task; the final evaluation, of the
    deterministic policy, is ``<prefix>/<task>/final_eval_return``).

    Recorded at each rollout end, so it lands on the same TensorBoard step as SB3's own dump.
    """

    def __init__(self, env: MultiTaskVecEnv, prefix: str = "pretrain"):
        super().__init__()
        self.env = env
        self.prefix = prefix
        self._seen = -1

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        # Off-policy algorithms end a "rollout" every few steps: record only when episodes ended.
        if self.env.episodes_finished == self._seen:
            return
        self._seen = self.env.episodes_finished
        for name in self.env.task_names:
            returns = self.env.episode_returns[name]
            if returns:
                lengths = self.env.episode_lengths[name]
                self.logger.record(f"{self.prefix}/{name}/rollout_return_mean100", sum(returns) / len(returns))
                self.logger.record(f"{self.prefix}/{name}/rollout_length_mean100", sum(lengths) / len(lengths))


def tensorboard_logger(log_dir: str | Path) -> Logger:
    """SB3's TensorBoard logger on ``log_dir``, emptied of earlier event files first: a run or a
    pre-training done again in the same place replaces its log, as it replaces its model, instead of
    leaving TensorBoard two interleaved curves under one name."""
    log_dir = Path(log_dir)
    for stale in log_dir.glob("events.out.tfevents.*"):
        stale.unlink()
    return configure(str(log_dir), ["tensorboard"])


def write_hparams(logger: Logger, hparams: dict[str, Any]) -> None:
    """Record a run's hyperparameters for TensorBoard's hparams plugin.

    Only the session's own record is written, no per-run "experiment" summary: the plugin then
    builds one table from every run's hyperparameters (pre-training and each transfer run alike),
    where SB3's ``HParam`` would make the first run's keys hide all others.
    """
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
    _, start, end = hparams_summary(clean, {})
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            writer = fmt.writer._get_file_writer()  # torch's, opened on first use
            writer.add_summary(start)
            writer.add_summary(end)
            fmt.writer.flush()


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept whole)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
