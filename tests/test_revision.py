"""The code revision results record: the checkout's commit, marked dirty by tracked changes only."""

from __future__ import annotations

import subprocess

import pytest

from rltransfer import revision


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout laid out like rltransfer's, which ``code_revision`` then reads."""
    (tmp_path / "rltransfer").mkdir()
    (tmp_path / "rltransfer" / "revision.py").write_text("# the module\n")

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    monkeypatch.setattr(revision, "ROOT", tmp_path)
    revision.code_revision.cache_clear()
    yield tmp_path, git("rev-parse", "HEAD").strip()
    revision.code_revision.cache_clear()


def test_the_revision_is_the_checkouts_commit_and_tracked_changes_make_it_dirty(checkout):
    root, commit = checkout
    assert revision.code_revision() == commit[:12]
    (root / "runs").mkdir()  # results and other untracked files are not code
    (root / "runs" / "log").write_text("x")
    revision.code_revision.cache_clear()
    assert revision.code_revision() == commit[:12]
    (root / "rltransfer" / "revision.py").write_text("# changed\n")
    revision.code_revision.cache_clear()
    assert revision.code_revision() == commit[:12] + "+dirty"


def test_an_installed_copy_or_another_projects_checkout_has_no_revision(checkout, tmp_path_factory, monkeypatch):
    root, _ = checkout
    (root / "rltransfer" / "revision.py").unlink()  # a checkout, but not of rltransfer
    revision.code_revision.cache_clear()
    assert revision.code_revision() is None
    monkeypatch.setattr(revision, "ROOT", tmp_path_factory.mktemp("site-packages"))  # no checkout at all
    revision.code_revision.cache_clear()
    assert revision.code_revision() is None
