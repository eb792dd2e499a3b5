"""Grid throughput of the batched engine against one SB3 process per seed, side by side in one run.

The same runs both ways, through the grid's own code (jobs, workers, evaluation, results written): the
seeds of one (target, strategy) cell of a publication, from the bundles it ships, with its config. First
as today, one SB3 ``learn`` per seed (``runner.batch_seeds: false``), then as batches
(``runner.batch_seeds: true``: each worker takes a batch of seeds). Prints, for each way, the grid's wall
time and its env steps per second per core (evaluation included, as in a real grid), and their ratio.

    python benchmarks/grid_throughput.py [--publication docs/results/cartpole] [--target very-long-heavy]
        [--strategy scratch] [--seeds 10] [--workers 2] [--timesteps N] [--also TARGET ...] [--rounds R]

``--rounds R`` measures both ways R times, alternating which goes first (SB3 then batched, batched then SB3,
...), and gives the ratio of the total times as well as each round's. The machine's speed can drift while
a benchmark runs (on a shared VM, by a third in an hour, the same code timed again), and a single round
charges the drift to whichever way ran second; alternating order charges it to both. Each round runs in a
directory of its own (with ``--config``, its own pre-training too): no run is re-used from another round.

``--phases`` (one worker: the runs train in this process) also says where each way's time went: its updates,
its rollouts (acting and stepping the envs), its evaluations, and the rest (building the agents, saving
them, writing results), each way's seconds side by side with their ratio. Each phase is timed by wrapping
the methods that do it (SB3's ``collect_rollouts`` and ``train``, the batched engine's, the evaluations);
an evaluation runs inside a rollout (a callback's) and counts as an evaluation only. It also counts the
evaluations' episode steps: the policies decide how long an episode lasts, so how much evaluating there is.

``--also`` adds targets, a cell each: a grid of several cells, where each worker takes whole cells (the batched
grid splits a cell's seeds across workers only where there are fewer cells than workers, as in a one-cell
benchmark with two workers).

A family whose publication ships no bundles (Pendulum's SAC, for one) is measured from its config instead:
``--config configs/pendulum.yaml --target heavy-long`` runs the experiment's grid for the one strategy both
ways (``rltransfer experiment`` with ``runner.batch_seeds`` false, then true, in one directory: one
pre-training, shortened by ``--pretrain-timesteps`` where the strategy does not need a trained bundle, as
``scratch``), and compares the grids' wall times (the manifest's ``grid_seconds``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from rltransfer.config import load_config
from rltransfer.execution.backends import run_local
from rltransfer.execution.batching import batches
from rltransfer.execution.job import BATCHED, SB3, RunJob
from rltransfer.hardware import this_machine
from rltransfer.records.bundle_manifest import read_manifest
from rltransfer.records.run_result import RESULT_FILE, FinishedRun, read_result
from rltransfer.reporting.publication import read_runs, shipped_bundles
from rltransfer.reporting.verification import _job
from rltransfer.store.keys import experiment_keys, run_hash
from rltransfer.validation import validate


def run_cell(
    pub: Path,
    target: str | Sequence[str],
    strategy: str,
    seeds: int,
    workers: int,
    engine: str,
    out: Path,
    timesteps: int | None = None,
    pretrain_seed: int | None = None,
) -> tuple[float, list[FinishedRun], int]:
    """The publication's first ``seeds`` runs of (``target``, ``strategy``) (more seeds than it publishes: as
    its grid would have made them) run again by ``engine`` in ``out``, from its shipped bundles (all from
    ``pretrain_seed``'s where given): wall time, results, units. Several targets: a grid of one cell each."""
    config = yaml.safe_load((pub / "config.yaml").read_text())
    n_pre = int(config["pretrain"]["seeds"])
    published = read_runs(pub)
    runs = []
    for name in [target] if isinstance(target, str) else target:
        finished = (r for r in published if isinstance(r, FinishedRun))
        cell = sorted((r for r in finished if r.target == name and r.strategy == strategy), key=lambda r: r.seed)
        if not cell:
            raise SystemExit(f"{pub} publishes no run of {name}/{strategy}")
        cell = cell[:seeds]
        for seed in range(len(cell), seeds):  # seeds beyond the published ones: as the grid would make them
            cell.append(cell[0].model_copy(update={"seed": seed, "pretrain_seed": seed % n_pre}))
        runs += cell
    bundles = {p: (path, read_manifest(path).weights.sha256) for p, path in shipped_bundles(pub).items()}
    overrides: dict = {"output_dir": str(out)}
    if timesteps:
        overrides["transfer"] = {**config["transfer"], "timesteps": timesteps}
    cfg = validate(load_config({**config, **overrides})).config
    chash = experiment_keys(cfg).experiment
    jobs = []
    for r in runs:
        if pretrain_seed is not None:
            r = r.model_copy(update={"pretrain_seed": pretrain_seed})
        job = _job(cfg, chash, r, bundles)
        key = run_hash(chash, cfg.to_dict(), r.strategy, r.seed, r.pretrain_seed, r.target, engine)
        jobs.append(replace(job, engine=engine, run_hash=key, threshold=r.threshold))
    units = batches(jobs, workers) if engine == BATCHED else [[j] for j in jobs]
    start = time.perf_counter()
    statuses = [summary.status for _, summary in run_local(units, workers)]
    wall = time.perf_counter() - start
    if set(statuses) != {"ok"}:
        raise SystemExit(f"{engine}: runs failed: {statuses}")
    results = [read_result(Path(job.out_dir) / RESULT_FILE) for job in jobs]
    return wall, [r for r in results if isinstance(r, FinishedRun)], len(units)


def run_config_cell(
    config: Path, target: str | Sequence[str], strategy: str, seeds: int, workers: int, engine: str, out: Path,
    timesteps: int | None = None, pretrain_timesteps: int | None = None,
) -> tuple[float, list[FinishedRun], int]:  # fmt: skip
    """The grid of ``config``'s (``target``, ``strategy``) with ``seeds`` seeds run by ``engine`` in ``out``
    (an experiment of its own; the pre-training shared by both engines): the grid's wall time, its results and
    its units. Several targets: a grid of one cell each."""
    from rltransfer.experiment import run_experiment

    targets = [target] if isinstance(target, str) else list(target)

    raw = yaml.safe_load(config.read_text())
    transfer = {**raw.get("transfer", {}), "strategies": [strategy], "seeds": seeds}
    if timesteps:
        transfer["timesteps"] = timesteps
    pretrain = {**raw.get("pretrain", {}), "seeds": 1}
    if pretrain_timesteps:  # too short to learn the sources: no gate (the strategy must not need them)
        pretrain = {**pretrain, "timesteps": pretrain_timesteps, "min_source_score": None}
    raw = {**raw, "target_tasks": targets, "transfer": transfer, "pretrain": pretrain, "output_dir": str(out),
           "runner": {**raw.get("runner", {}), "workers": workers, "batch_seeds": engine == BATCHED}}  # fmt: skip
    res = run_experiment(raw, progress=False, echo=False)
    if res.failed:
        raise SystemExit(f"{engine}: runs failed: {res.failed}")
    manifest = json.loads((res.run_dir / "manifest.json").read_text())
    paths = [p for t in targets for p in sorted((res.run_dir / "runs" / t / strategy).glob(f"seed-*/{RESULT_FILE}"))]
    results = [read_result(p) for p in paths]
    jobs = [replace(_job_stub(t, strategy, s), engine=engine) for t in targets for s in range(seeds)]
    units = len(batches(jobs, workers)) if engine == BATCHED else len(jobs)
    return float(manifest["grid_seconds"]), [r for r in results if isinstance(r, FinishedRun)], units


def _job_stub(target: str, strategy: str, seed: int) -> RunJob:
    """A job that says only its cell and seed (what :func:`batches` groups by)."""
    return RunJob({}, "", "", {"name": target, "params": {}}, "", strategy, seed, 0, 0.0, 0.0, "")


PHASES = ("update", "rollout", "evaluation")


def _phase_methods() -> list[tuple[str, Any, str]]:
    """``(phase, class, method)``: what each phase of a run is timed by (only the methods a class defines)."""
    from stable_baselines3 import DQN, PPO, SAC
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    from rltransfer import evaluation, evaluation_together
    from rltransfer.agents.batched_dqn import BatchedDQN
    from rltransfer.agents.batched_off_policy import OffPolicyBatch
    from rltransfer.agents.batched_ppo import BatchedPPO
    from rltransfer.agents.batched_sac import BatchedSAC
    from rltransfer.agents.multitask_dqn import TransferDQN
    from rltransfer.agents.multitask_sac import TransferSAC
    from rltransfer.agents.transfer_ppo import KickstartPPO, TransferPPO

    updates = (PPO, TransferPPO, KickstartPPO, SAC, TransferSAC, DQN, TransferDQN)
    batched = (BatchedPPO, OffPolicyBatch, BatchedSAC, BatchedDQN)
    out: list[tuple[str, Any, str]] = [("update", c, "train") for c in updates]
    out += [("update", c, "_train") for c in batched]
    out += [("rollout", c, "collect_rollouts") for c in (OnPolicyAlgorithm, OffPolicyAlgorithm)]
    out += [("rollout", c, "_collect_rollouts") for c in batched]
    out += [("evaluation", evaluation.Evaluator, "evaluate")]
    out += [("evaluation", evaluation_together, "evaluate_together")]  # a module: job.py imports it when it runs
    return [(phase, owner, name) for phase, owner, name in out if name in vars(owner)]


class Phases:
    """Seconds spent in each of :data:`PHASES` by the runs trained in this process while :meth:`timing`.
    A phase entered inside itself (a subclass's ``train`` calling SB3's) is timed once; inside another (an
    evaluation in a rollout's callback), its time is taken off the outer one."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: Counter[str] = Counter()
        self.clock = clock
        self.episode_steps = 0
        """The evaluations' env steps of episodes not yet ended: what the policies made the evaluations cost
        (an episode lasts as long as the policy keeps it going)."""
        self._open: list[list[Any]] = []  # [phase, start, seconds of the phases nested in it]

    def _timed(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._open and self._open[-1][0] == phase:
                return fn(*args, **kwargs)
            self._open.append([phase, self.clock(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                _, start, nested = self._open.pop()
                spent = self.clock() - start
                self.seconds[phase] += spent - nested
                if self._open:
                    self._open[-1][2] += spent

        return timed

    def _counted(self, stepped: Callable[..., Any]) -> Callable[..., Any]:
        def counted(episodes: Any, *args: Any, **kwargs: Any) -> Any:
            self.episode_steps += int(episodes._alive.sum())
            return stepped(episodes, *args, **kwargs)

        return counted

    @contextmanager
    def timing(self) -> Iterator[None]:
        from rltransfer.evaluation import Episodes

        saved = [(phase, owner, name, vars(owner)[name]) for phase, owner, name in _phase_methods()]
        stepped = Episodes.stepped
        for phase, owner, name, fn in saved:
            setattr(owner, name, self._timed(phase, fn))
        Episodes.stepped = self._counted(stepped)  # type: ignore[method-assign]
        try:
            yield
        finally:
            for _, owner, name, fn in saved:
                setattr(owner, name, fn)
            Episodes.stepped = stepped  # type: ignore[method-assign]

    def line(self, wall: float) -> str:
        parts = [f"{p} {self.seconds[p]:.1f} s" for p in PHASES]
        rest = wall - sum(self.seconds[p] for p in PHASES)
        return ", ".join([*parts, f"the rest {rest:.1f} s; {self.episode_steps:,} evaluation episode steps"])


def cell_parser(doc: str | None, seeds: int) -> argparse.ArgumentParser:
    """The arguments that name a publication's cell and how to run it (this script's and the equivalence's)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publication", default="docs/results/cartpole")
    ap.add_argument("--target", default="very-long-heavy")
    ap.add_argument("--strategy", default="scratch")
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--workers", type=int, default=2)
    return ap


def main() -> None:
    ap = cell_parser(__doc__, seeds=10)
    ap.add_argument("--timesteps", type=int, default=None, help="each run's budget (default: the config's)")
    ap.add_argument("--config", type=Path, default=None, help="measure from this config instead of a publication")
    ap.add_argument("--pretrain-timesteps", type=int, default=None, help="with --config: a shorter pre-training")
    ap.add_argument(
        "--also", nargs="+", default=[], metavar="TARGET",
        help="more targets, a cell each (the same strategy and seeds): a grid whose workers take whole cells",
    )  # fmt: skip
    ap.add_argument("--rounds", type=int, default=1, help="both ways this many times, alternating which goes first")
    ap.add_argument("--phases", action="store_true", help="where each way's time went (one worker, a publication)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, not {args.rounds}")
    if args.phases and (args.workers != 1 or args.config is not None):
        ap.error("--phases times the runs in this process: it needs --workers 1 and a publication, not --config")
    targets = [args.target, *args.also]
    cells = "/".join(targets)
    times: dict[str, list[float]] = {SB3: [], BATCHED: []}
    phases = {SB3: Phases(), BATCHED: Phases()}
    with tempfile.TemporaryDirectory(prefix="rltransfer-throughput-") as tmp:
        for n in range(args.rounds):
            round_dir = Path(tmp) / f"round-{n}"  # a round's runs are its own, never re-used from another's
            for engine in (SB3, BATCHED) if n % 2 == 0 else (BATCHED, SB3):
                if args.config is not None:
                    wall, results, units = run_config_cell(
                        args.config, targets, args.strategy, args.seeds, args.workers, engine, round_dir,
                        args.timesteps, args.pretrain_timesteps,
                    )  # fmt: skip
                else:
                    with phases[engine].timing() if args.phases else nullcontext():
                        wall, results, units = run_cell(
                            Path(args.publication), targets, args.strategy, args.seeds, args.workers, engine,
                            round_dir / engine, args.timesteps,
                        )  # fmt: skip
                times[engine].append(wall)
                steps = sum(r.budget for r in results)
                print(
                    f"{engine:8s} {len(results)} runs of {results[0].budget} steps ({cells} x {args.strategy}), "
                    f"{units} unit(s) on {args.workers} worker(s): grid {wall:.1f} s, "
                    f"{steps / wall / args.workers:.0f} env steps/s per core",
                    flush=True,
                )
    where = this_machine()  # the CPU kind (vendor, torch's kernels): it decides the speed as it decides the bits
    ratio = sum(times[SB3]) / sum(times[BATCHED])
    if args.phases:
        for engine in (SB3, BATCHED):
            print(f"{engine:8s} phases over {args.rounds} round(s): {phases[engine].line(sum(times[engine]))}")
        sb3, bat = phases[SB3].seconds, phases[BATCHED].seconds
        each = [f"{p} {sb3[p] / bat[p]:.2f}x" for p in PHASES if bat[p] > 0]
        rest = (sum(times[SB3]) - sum(sb3.values())) / max(sum(times[BATCHED]) - sum(bat.values()), 1e-9)
        print(f"sb3 / batched, phase by phase: {', '.join([*each, f'the rest {rest:.2f}x'])}")
    if args.rounds == 1:
        print(f"batched / sb3: {ratio:.2f}x the throughput ({where})")
        return
    rounds = ", ".join(f"{a / b:.2f}x" for a, b in zip(times[SB3], times[BATCHED]))
    print(
        f"batched / sb3 over {args.rounds} rounds: {ratio:.2f}x the throughput "
        f"(SB3 {sum(times[SB3]):.1f} s, batched {sum(times[BATCHED]):.1f} s; rounds: {rounds}) ({where})"
    )


if __name__ == "__main__":
    main()
