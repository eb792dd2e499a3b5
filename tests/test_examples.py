"""The examples run as a user runs them: a script of its own, its worker processes re-importing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_own_env_example_runs_its_whole_study(tmp_path):
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "own_env.py"), "--quick", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "RLTRANSFER_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "slider-quick" / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["workers"] >= 1
    assert sorted(manifest["runs"]) == [f"heavy/{s}/seed-{k}" for s in ("finetune", "scratch") for k in (0, 1)]
    assert "report: " in res.stdout and "heavy" in res.stdout
