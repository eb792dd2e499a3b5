"""``rltransfer families --check`` compares a family's vector build with the family's own envs stepped one by one
(the same parameters, reset seeds and seeded random actions): a user's vector build that gives other results (a
parameter it ignores, a start drawn from another stream) fails its "vector build" check, naming the task, the
result and the step, where it would have trained every run on other dynamics than the family's envs have."""

from __future__ import annotations

import numpy as np
import pytest

from rltransfer.cli import main
from rltransfer.envs import Family, register_family
from rltransfer.envs.cartpole import CARTPOLE, PARAMETERS, CartPoleVector
from rltransfer.envs.checks import check_family, check_vector_build


class FixedGravity(CartPoleVector):
    """Every cart on Earth, whatever its task's gravity."""

    def __init__(self, params):
        super().__init__([{**p, "gravity": 9.8} for p in params])


class OwnStream(CartPoleVector):
    """Starts drawn from a generator of its own, not the env's seeded one."""

    def _reset(self, index: np.ndarray) -> None:
        for i in index:
            self.state[i] = np.random.default_rng(1).uniform(low=-0.05, high=0.05, size=(4,))


class Breaks(CartPoleVector):
    def _step(self, actions):
        raise FloatingPointError("my physics overflowed")


def cartpole_with(vector: type[CartPoleVector], name: str) -> Family:
    return register_family(
        Family(
            name=name, parameters=PARAMETERS, build=CARTPOLE.build,
            tasks={"earth": {}, "moon": {"gravity": 2.5}, "long": {"length": 1.5}}, source=["earth", "long"],
            targets=["moon"], reward_threshold=195.0, vector=vector,
        ),
        overwrite=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("vector", "told"),
    [
        (FixedGravity, "task 'moon' (sub-env 1): its observation at step 1 differs from the family's env's"),
        (OwnStream, "task 'earth' (sub-env 0): its observation after the reset differs from the family's env's"),
        (Breaks, "step 1 raised FloatingPointError: my physics overflowed (raised at "),
    ],
)
def test_a_vector_build_that_differs_from_the_familys_envs_fails_its_check(vector, told, capsys):
    family = cartpole_with(vector, f"cartpole-{vector.__name__.lower()}")
    (check,) = check_vector_build(family)
    assert not check.ok and check.detail.startswith(told), check.detail
    assert main(["families", family.name, "--check"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL vector build: {told}" in out and "1 check(s) failed" in out  # every other check passes


def test_the_shipped_vector_builds_pass_and_a_family_without_one_has_no_such_check():
    checks = {c.name: c for c in check_family(cartpole_with(CartPoleVector, "cartpole-own-vector"))}
    assert checks["vector build"].ok, checks["vector build"].detail
    ended = int(checks["vector build"].detail.split(", ")[-1].split()[0])
    assert ended > 100  # episodes ended and restarted from each env's own stream
    assert check_vector_build(cartpole_with(None, "cartpole-no-vector")) == []
