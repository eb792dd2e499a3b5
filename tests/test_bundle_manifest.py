"""A bundle's manifest: one typed record (with its Architecture), read and written by one module."""

import json
import shutil
from pathlib import Path

import pytest

from rltransfer.agent_factory import policy_kwargs
from rltransfer.errors import BundleError
from rltransfer.records.bundle_manifest import Architecture, manifest_checksum, read_manifest

SHIPPED = sorted(Path(__file__).parents[1].glob("docs/results/*/bundles/pretrain-seed-*"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parents[1].name}-{p.name}")
def test_a_shipped_manifest_read_and_written_back_is_the_same_bytes(path, tmp_path):
    assert SHIPPED
    manifest = read_manifest(path)
    assert manifest.sealed().manifest_sha256 == manifest.manifest_sha256
    manifest.write(tmp_path)
    assert (tmp_path / "bundle.json").read_bytes() == (path / "bundle.json").read_bytes()


def test_an_architecture_gives_the_policy_kwargs_of_its_tasks():
    arch = read_manifest(SHIPPED[0]).architecture
    target = arch.for_tasks(["heavy"])
    assert target.task_names == ["heavy"] and arch.task_names != ["heavy"]  # the bundle's own is unchanged
    kwargs = policy_kwargs(target, frozen=["encoder"])
    assert kwargs["task_names"] == ["heavy"] and kwargs["frozen"] == ["encoder"]
    assert kwargs["features_extractor_kwargs"] == {k: v for k, v in arch.encoder.items() if k != "type"}
    with pytest.raises(ValueError, match="heads"):
        Architecture.model_validate({**arch.to_json(), "heads": None})


def test_a_malformed_field_is_named(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(SHIPPED[0], bundle)
    data = json.loads((bundle / "bundle.json").read_text())
    data["architecture"]["task_names"] = "short"  # a name where a list belongs
    data["manifest_sha256"] = manifest_checksum(data)
    (bundle / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=r"malformed at architecture.task_names: Input should be a valid list"):
        read_manifest(bundle)
