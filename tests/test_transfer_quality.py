"""Slow learning tests (run with: bash scripts/test.sh -m slow): transfer must still pay off."""

from pathlib import Path

import pytest

import rltransfer

pytestmark = pytest.mark.slow


def test_pretrained_cartpole_agents_beat_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTRANSFER_CACHE", str(tmp_path / "cache"))
    res = rltransfer.run_experiment(
        str(Path(__file__).parent.parent / "configs" / "quickstart.yaml"),
        [
            f"output_dir={tmp_path}",
            "target_tasks=[medium]",
            "transfer.seeds=5",
            "transfer.strategies=[scratch,finetune,freeze_encoder]",
        ],
        progress=False,
        echo=False,
    )
    assert not res.failed
    rows = {r["strategy"]: r for r in res.summary["rows"]}
    # The pre-trained source tasks are solved...
    bundle = rltransfer.load_bundle(res.run_dir / "pretrain" / "bundle")
    assert all(e["mean_return"] >= 475 for e in bundle.manifest.evaluation.values())
    # ...and on the held-out interpolation target the best transfer strategy beats scratch, significantly.
    best = max((r for s, r in rows.items() if s != "scratch"), key=lambda r: r["auc_iqm"])
    assert best["auc_iqm"] > rows["scratch"]["auc_iqm"]
    assert best["significant"] and best["auc_ratio"] > 1.2 and best["jumpstart"] > 0.5
