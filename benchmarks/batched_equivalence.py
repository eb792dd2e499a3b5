"""Does the batched engine learn as SB3's own ``learn`` does? The same cell both ways (``--seeds`` runs each,
the publication's config and shipped bundles), compared as the report compares strategies: the Kaplan-Meier
curves of the steps to the threshold (two-sided log-rank p; the engines should not differ, p > 0.05) and
the AUC IQMs with their 95% bootstrap CIs (they should overlap). Random streams differ between the engines,
so the runs differ one by one; only their distributions are compared.

    python benchmarks/batched_equivalence.py [--publication docs/results/cartpole] [--target very-long-heavy]
        [--strategy scratch] [--seeds 20] [--workers 2] [--pretrain-seed P]

``--pretrain-seed`` starts every run from that pre-training's bundle (a transfer strategy "from one bundle").
``--config configs/pendulum.yaml --target heavy-long`` measures from a config instead of a publication (as
``grid_throughput.py --config``: one pre-training for both engines, shortened by ``--pretrain-timesteps``
for ``scratch``, which does not use its weights).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from grid_throughput import cell_parser, run_cell, run_config_cell  # noqa: E402

from rltransfer.execution.job import BATCHED, SB3  # noqa: E402
from rltransfer.stats.bootstrap import interval, iqm_rows  # noqa: E402
from rltransfer.stats.metrics import iqm  # noqa: E402


def main() -> None:
    ap = cell_parser(__doc__, seeds=20)
    ap.add_argument("--pretrain-seed", type=int, default=None)
    ap.add_argument("--config", type=Path, default=None, help="measure from this config instead of a publication")
    ap.add_argument("--pretrain-timesteps", type=int, default=None, help="with --config: a shorter pre-training")
    args = ap.parse_args()
    out, cis = {}, {}
    with tempfile.TemporaryDirectory(prefix="rltransfer-equivalence-") as tmp:
        for engine in (SB3, BATCHED):
            if args.config is not None:
                wall, results, _ = run_config_cell(
                    args.config, args.target, args.strategy, args.seeds, args.workers, engine, Path(tmp),
                    pretrain_timesteps=args.pretrain_timesteps,
                )  # fmt: skip
            else:
                wall, results, _ = run_cell(
                    Path(args.publication), args.target, args.strategy, args.seeds, args.workers, engine,
                    Path(tmp) / engine, pretrain_seed=args.pretrain_seed,
                )  # fmt: skip
            out[engine] = results
            auc = np.array([r.metrics.auc for r in results])
            low, high, _ = interval([auc.tolist()], iqm_rows, seed=0)
            reached = sum(r.metrics.reached for r in results)
            print(
                f"{engine:8s} {len(results)} runs ({wall:.0f} s): AUC IQM {iqm(auc):.3f} [{low:.3f}, {high:.3f}], "
                f"{reached}/{len(results)} reach the threshold, median steps to it {np.median([r.metrics.ttt for r in results]):.0f}",
                flush=True,
            )
            cis[engine] = (low, high)
    a, b = out[SB3], out[BATCHED]

    def censored(runs):
        t = np.array([r.metrics.ttt for r in runs], float)
        hit = np.array([r.metrics.reached for r in runs], bool)
        return stats.CensoredData(uncensored=t[hit], right=t[~hit])

    hit = any(r.metrics.reached for r in a + b)
    p = float(stats.logrank(censored(a), censored(b)).pvalue) if hit else 1.0
    (la, ha), (lb, hb) = cis[SB3], cis[BATCHED]
    overlap = la <= hb and lb <= ha
    print(
        f"{args.target}/{args.strategy}: log-rank p = {p:.3f} ({'not different' if p > 0.05 else 'DIFFERENT'}); "
        f"AUC IQM CIs {'overlap' if overlap else 'DO NOT overlap'}"
    )


if __name__ == "__main__":
    main()
