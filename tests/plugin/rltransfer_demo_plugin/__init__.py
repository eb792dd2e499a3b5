"""A tiny plugin package, as a user would publish one: a family, a strategy and an encoder, exposed
through rltransfer's entry-point groups (tests/test_plugins.py writes its dist-info)."""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym


def build(params: Mapping[str, float]) -> gym.Env:
    env = gym.make("CartPole-v1")
    cp = env.unwrapped
    cp.length = params["length"]
    cp.polemass_length = cp.masspole * cp.length
    return env


def families():
    from rltransfer.envs import Family, Parameter

    return [
        Family(
            name="demo-poles",
            parameters=[Parameter("length", 0.5, 0.2, 2.0, "half the pole's length [m]")],
            build=build,
            tasks={"short": {"length": 0.3}, "default": {}, "long": {"length": 0.9}, "far": {"length": 1.5}},
            source=["short", "default"],
            targets={"long": "extrapolation"},
            description="a plugin's family: CartPole poles",
        )
    ]


def strategies() -> None:
    from rltransfer.strategies import STRATEGIES, Plan, register_strategy

    if "encoder_only" in STRATEGIES:
        return

    @register_strategy("encoder_only", {"load": ["encoder"]})
    def encoder_only(params):
        """A plugin's strategy: the pre-trained encoder, frozen; trunk and heads fresh."""
        return Plan(load=list(params["load"]), frozen=["encoder"])


def _encoder():
    from rltransfer.agents import MlpEncoder

    class DemoEncoder(MlpEncoder):
        """A plugin's encoder: rltransfer's MLP under another name (agent.encoder.type: demo_mlp)."""

    return DemoEncoder


DemoEncoder = _encoder()
