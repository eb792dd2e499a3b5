"""Slow learning tests (run with: bash scripts/test.sh -m slow): transfer must still pay off."""

from pathlib import Path

import pytest

import rltransfer
from rltransfer.records.experiment_manifest import ExperimentManifest
from rltransfer.store.layout import bundle_dir

pytestmark = pytest.mark.slow


def test_pretrained_cartpole_agents_beat_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    res = rltransfer.run_experiment(
        str(Path(__file__).parent.parent / "configs" / "quickstart.yaml"),
        [
            f"output_dir={tmp_path}",
            "transfer.seeds=5",
            "transfer.strategies=[scratch,finetune,freeze_encoder]",
        ],
        progress=False,
        echo=False,
    )
    assert not res.failed
    # The pre-training transferred from (the gate's: a seed that misses a source is replaced) solves its sources...
    protocol = ExperimentManifest.read(res.run_dir).protocol
    assert protocol is not None and protocol.pretrain_kept
    for seed in protocol.pretrain_kept:
        bundle = rltransfer.load_bundle(bundle_dir(res.run_dir, seed))
        assert all(e["mean_return"] >= 475 for e in bundle.manifest.evaluation.values())
    # ...on the interpolation target its agents start far ahead of scratch (a strategy's runs may all sit at the
    # threshold from step 0 there: one curve, nothing to test)...
    rows = {(r["target"], r["strategy"]): r for r in res.summary["rows"]}
    medium = max((rows["medium", s] for s in ("finetune", "freeze_encoder")), key=lambda r: r["auc_iqm"])
    assert medium["auc_iqm"] > rows["medium", "scratch"]["auc_iqm"] and medium["jumpstart"] > 0.5
    # ...and on the extrapolation target, where they still have to learn (how far ahead they start depends on the
    # pre-training), the best beats scratch significantly.
    vlh = max((rows["very-long-heavy", s] for s in ("finetune", "freeze_encoder")), key=lambda r: r["auc_iqm"])
    assert vlh["significant"] and vlh["auc_ratio"] > 1.2
