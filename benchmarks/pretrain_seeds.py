"""Is a zero-shot score a property of the config or of one pre-training seed? Pre-train the config once
per seed and score each bundle on the targets before any update, exactly as an experiment's runs score
step 0: the config's evaluation episodes, threshold and random return, the head ``transfer.head_init``
gives.

    python benchmarks/pretrain_seeds.py configs/pendulum.yaml --seeds 0 1 2 --set conditioning=none

An experiment pre-trains once (``pretrain.seeds: 1``), so every one of its zero_shot runs is the same agent
and "10/10 at step 0" is one agent's result. Seed 0 here is the experiment's own pre-training (the same
function and seed), so its row repeats the experiment's P(0): a check that the two agree. Bundles go to
``runs/<name>-pretrain-seeds/seed-<n>/`` and are re-used when their config is the same.
"""

from __future__ import annotations

import argparse
import json

from config_sweep import solved_sources

from rltransfer.baselines import thresholds_and_baselines
from rltransfer.bundle import load_bundle
from rltransfer.config import load_config
from rltransfer.evaluation import Evaluator
from rltransfer.pretraining import pretrain
from rltransfer.stats import metrics
from rltransfer.transferring import eval_env_factory, transfer
from rltransfer.validation import resolve


def zero_shot_return(cfg, bundle, target: str) -> float:
    """The mean return of the untouched transferred agent on the config's evaluation episodes (step 0)."""
    ev = cfg.evaluation
    evaluator = Evaluator(eval_env_factory(cfg, bundle, target, ev.episodes), ev.every, ev.every, ev.episodes,
                          ev.deterministic, float)  # fmt: skip
    # The config's budget, so that a probe of source heads (``head_init: probe``) fits in it as in a run; the
    # evaluator stops at its first checkpoint after step 0, and step 0 scores the agent before any probe.
    transfer(cfg, bundle, target, "zero_shot", seed=0, callbacks=[evaluator], save=False)
    return evaluator.curve["return"][0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="pre-training seeds")
    ap.add_argument("--targets", nargs="+", default=None, help="default: the config's target tasks")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    setup = resolve(cfg)
    targets = [t for t in setup.targets if args.targets is None or t.name in args.targets]
    tasks = thresholds_and_baselines(setup.family, targets, cfg.evaluation.thresholds)
    root = cfg.run_dir.with_name(f"{cfg.name}-pretrain-seeds")
    scores: dict[str, list[float]] = {t.name: [] for t in targets}
    print(f"{args.config} {' '.join(args.set)}: zero-shot on {cfg.evaluation.episodes} evaluation episodes")
    print("| pre-training seed | sources solved | " + " | ".join(f"{t.name} return (P(0))" for t in targets) + " |")
    print("|---|---|" + "---|" * len(targets))
    for seed in args.seeds:
        out = root / f"seed-{seed}"
        path = out / "bundle"
        if not (path / "bundle.json").is_file() or load_bundle(path).manifest.config_hash != cfg.hash():
            pretrain(cfg, seed=seed, out_dir=out)
        bundle = load_bundle(path)
        solved = len(solved_sources(bundle.manifest.evaluation or {}, setup))
        cells = []
        for t in targets:
            r = zero_shot_return(cfg, bundle, t.name)
            p0 = float(metrics.normalise(r, tasks[t.name]["random_return"], tasks[t.name]["threshold"]))
            scores[t.name].append(p0)
            cells.append(f"{r:.1f} ({p0:.2f}{', at threshold' if p0 >= 1.0 else ''})")
        print(f"| {seed} | {solved}/{len(setup.sources)} | " + " | ".join(cells) + " |", flush=True)
    summary = {t: {"p0": s, "at_threshold": sum(p >= 1.0 for p in s)} for t, s in scores.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
