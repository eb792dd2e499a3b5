"""Experiment directories of older layouts, brought to the current one by ``rltransfer migrate DIR``.

Every experiment directory's ``manifest.json`` records its ``layout_version``; one written before the
version was recorded is version 1. An experiment refuses to resume a directory of an older layout and
names the command that migrates it, instead of carrying compatibility branches in its hot path.

- 1: TensorBoard logs beside each artifact: ``runs/<target>/<strategy>/seed-S/tb``,
  ``pretrain/tb`` and ``pretrain/seed-P/tb``, aggregates in ``aggregate/``.
- 2: one TensorBoard tree, ``tb/`` (:mod:`rltransfer.store.layout`): ``tb/<target>/<strategy>/seed-S``,
  ``tb/pretrain/seed-P``, ``tb/<target>/iqm/<strategy>`` (written by the report).
- 3: every hash the current one. Versions before 2026-11-28 hashed the target tasks into the experiment
  hash (so a run's hash named no target), and a directory they wrote kept that hash in its manifest, its
  bundles and its results (``previous_hashes``: the old hash to the current one, where an experiment
  resumed it since); bundles written before their manifest recorded ``pretrain_hash`` lack it. Migrating
  rewrites those hashes, so that finding a finished run or bundle is one comparison with the current hash.
- 4: a run's own hash is ``run_hash`` in its ``result.json`` (and in a copied run's ``copied_from``): before,
  it was ``config_hash``, the name manifest.json, summary.json and bundle.json give the config's hash.
  A publication (``rltransfer publish``: its runs in ``runs.jsonl.gz``) migrates the same way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rltransfer.atomic import write_json_atomic
from rltransfer.config import ExperimentConfig, load_config
from rltransfer.errors import UserInputError
from rltransfer.records.bundle_manifest import MANIFEST_FILE, manifest_checksum
from rltransfer.records.run_result import RESULT_FILE, RUNS_FILE, read_json_lines, write_json_lines
from rltransfer.store import layout
from rltransfer.store.keys import comparable_config, digest, experiment_hash, pretraining_hash, run_hash

LAYOUT_VERSION = 4
MANIFEST = "manifest.json"


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None where it is unreadable or not an object (a torn write)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    return _json_object(run_dir / MANIFEST)


def layout_version(run_dir: Path) -> int:
    """The layout of an experiment directory (the current one for a directory without a manifest yet)."""
    manifest = _manifest(Path(run_dir))
    if manifest is None:
        return LAYOUT_VERSION
    return int(manifest.get("layout_version", 1))


def check_layout(run_dir: Path) -> None:
    """Refuse a directory of an older layout, naming the command that migrates it."""
    version = layout_version(run_dir)
    if version < LAYOUT_VERSION:
        raise UserInputError(
            f"'{run_dir}' has layout version {version} (this rltransfer writes {LAYOUT_VERSION}); migrate it "
            f"first, its results kept: rltransfer migrate {run_dir}"
        )
    if version > LAYOUT_VERSION:
        raise UserInputError(
            f"'{run_dir}' has layout version {version}, newer than this rltransfer's ({LAYOUT_VERSION}): upgrade rltransfer"
        )


def _move(source: Path, dest: Path, moved: list[str], root: Path) -> None:
    if not source.is_dir():
        return
    if dest.exists():
        raise UserInputError(f"cannot migrate '{root}': '{dest}' exists already (a half-migrated directory?)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(dest))
    moved.append(f"{source.relative_to(root)} -> {dest.relative_to(root)}")


def migrate(run_dir: str | Path) -> list[str]:
    """Bring the experiment directory (or publication) ``run_dir`` to :data:`LAYOUT_VERSION`; what was done,
    one line an action (nothing where it is current). No run's curve, model or bundle weights change: only
    where TensorBoard logs lie (to 2), the hashes results and bundle manifests record (to 3) and the name
    of a result's hash (to 4)."""
    root = Path(run_dir)
    manifest = _manifest(root)
    if manifest is None:
        raise UserInputError(f"'{root}' is not an experiment directory (no readable {MANIFEST})")
    done: list[str] = []
    if int(manifest.get("layout_version", 1)) < 2:
        for tb in sorted(root.glob("runs/*/*/seed-*/tb")):
            target, strategy, seed = tb.parent.parent.parent.name, tb.parent.parent.name, tb.parent.name
            _move(tb, layout.tb_root(root) / target / strategy / seed, done, root)
        for tb in sorted(root.glob("pretrain/seed-*/tb")):
            _move(tb, layout.tb_root(root) / "pretrain" / tb.parent.name, done, root)
        _move(root / "pretrain" / "tb", layout.pretrain_tb(root, 0), done, root)
        if (root / "aggregate").is_dir():
            shutil.rmtree(root / "aggregate")
            done.append("aggregate/ removed (rltransfer report writes the IQM curves again, under tb/)")
        manifest["layout_version"] = 2
        write_json_atomic(root / MANIFEST, manifest)
        done.append("layout_version 2")
    if int(manifest["layout_version"]) < 3:
        done += _current_hashes(root, manifest)
        manifest["layout_version"] = 3
        write_json_atomic(root / MANIFEST, manifest)
        done.append("layout_version 3")
    if int(manifest["layout_version"]) < 4:
        done += _run_hash_named(root)
        manifest["layout_version"] = 4
        write_json_atomic(root / MANIFEST, manifest)
        done.append("layout_version 4")
    return done


def _renamed(result: dict[str, Any]) -> dict[str, Any]:
    """A result (or its ``copied_from``) with its run's hash under ``run_hash``, keys in their order."""
    out = {("run_hash" if k == "config_hash" else k): v for k, v in result.items()}
    if isinstance(out.get("copied_from"), dict):
        out["copied_from"] = _renamed(out["copied_from"])
    return out


def _run_hash_named(root: Path) -> list[str]:
    """Rename every result's ``config_hash`` (its run's hash) ``run_hash``: the run directories' results and
    a publication's runs file."""
    renamed, done = 0, []
    for path in sorted(root.glob(f"runs/*/*/seed-*/{RESULT_FILE}")):
        result = _json_object(path)
        if result is None:  # as a run that never finished: the experiment runs it again
            done.append(f"{path.relative_to(root)}: unreadable, left as it is (the experiment runs it again)")
            continue
        write_json_atomic(path, _renamed(result))
        renamed += 1
    done += [f"{renamed} result(s): config_hash -> run_hash"] if renamed else []
    if (root / RUNS_FILE).is_file():
        try:
            results = read_json_lines(root / RUNS_FILE)
        except (OSError, ValueError) as err:
            raise UserInputError(f"cannot migrate '{root}': '{RUNS_FILE}' is unreadable ({err})") from None
        write_json_lines([_renamed(r) for r in results], root / RUNS_FILE)
        done.append(f"{RUNS_FILE}: {len(results)} result(s), config_hash -> run_hash")
    return done


def _hash_with_targets(cfg: ExperimentConfig) -> str:
    """The experiment hash as versions before 2026-11-28 computed it: the target tasks in it."""
    return digest(comparable_config(cfg), 16)


def _current_hashes(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Rewrite an earlier version's experiment hash (and its runs' hashes, which named no target) to the
    current ones in the manifest, the results and the bundles; give every bundle its ``pretrain_hash``."""
    try:
        cfg = load_config(root / "config.yaml")
    except (OSError, ValueError, UserInputError) as err:
        raise UserInputError(f"cannot migrate '{root}': its config.yaml is unreadable ({err})") from None
    now = experiment_hash(cfg)
    old = {h for h, to in (manifest.pop("previous_hashes", None) or {}).items() if to == now and h != now}
    if manifest.get("config_hash") == _hash_with_targets(cfg) != now:
        old.add(manifest["config_hash"])
        manifest["config_hash"] = now
    config, done, runs = cfg.to_dict(), [], 0
    for path in sorted(root.glob("runs/*/*/seed-*/result.json")):
        r = _json_object(path)
        if r is None or not {"strategy", "target"} <= set(r):  # left as it is: the experiment runs it again
            continue
        seed, p = int(r.get("seed", 0)), r.get("pretrain_seed")
        engine = {"engine": r["engine"]} if r.get("engine") else {}  # a run's key names an engine other than SB3's
        if any(r.get("config_hash") == run_hash(h, config, r["strategy"], seed, p, **engine) for h in old):
            r["config_hash"] = run_hash(now, config, r["strategy"], seed, p, r["target"], **engine)
            write_json_atomic(path, r)
            runs += 1
    if runs:
        done.append(f"{runs} result(s): the current run hash")

    phash = pretraining_hash(cfg)
    for path in sorted(root.glob(f"pretrain/**/{layout.BUNDLE_DIR}/{MANIFEST_FILE}")):
        b = _json_object(path)
        if b is None:  # left as it is: the experiment says the bundle is unreadable and trains it again
            continue
        ours = b.get("experiment_hash") in old | {now}
        if not ours or (b["experiment_hash"] == now and "pretrain_hash" in b):
            continue
        b.update(experiment_hash=now, pretrain_hash=b.get("pretrain_hash", phash))
        b["manifest_sha256"] = manifest_checksum(b)
        write_json_atomic(path, b)
        done.append(f"{path.parent.relative_to(root)}: the current experiment and pre-training hashes")
    return done
