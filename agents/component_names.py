"""The names of a policy's components, as configs, strategies and bundles use them.

Pure names (no torch): a strategy's parameters are checked against them, and a report that shows a
strategy's parameters needs no more than these. :mod:`rltransfer.agents.components` maps a policy's
tensors to and from a bundle under these names.
"""

from __future__ import annotations

PREFIXES = {"encoder": "features_extractor.", "trunk": "mlp_extractor.", "heads": "heads."}
"""Component -> attribute of a network (its parameters' prefix)."""
TRUNK_SIDES = {"trunk.pi": "mlp_extractor.policy_net.", "trunk.vf": "mlp_extractor.value_net."}
"""The two sides of an actor-critic trunk (SB3's ``MlpExtractor.policy_net`` and ``value_net``, the ``pi``
and ``vf`` of ``net_arch``): each can be frozen without the other."""
FREEZABLE = (*PREFIXES, *TRUNK_SIDES)
ALIASES = ("pi_features_extractor.", "vf_features_extractor.")
"""Aliases of ``features_extractor`` in SB3's actor-critic policies when the extractor is shared: skipped."""


def component_of(param_name: str) -> str:
    """The component of a parameter name inside a network: ``features_extractor.net.0.weight`` ->
    ``encoder``; ``mlp_extractor...`` -> ``trunk``; anything else -> its first segment."""
    for component, prefix in PREFIXES.items():
        if param_name.startswith(prefix):
            return component
    if param_name.startswith(ALIASES):
        return "encoder"
    return param_name.split(".", 1)[0]


def trunk_side(param_name: str) -> str | None:
    """``trunk.pi`` or ``trunk.vf`` for a parameter (named inside its network) of that side of an
    actor-critic trunk; ``None`` for any other."""
    return next((side for side, prefix in TRUNK_SIDES.items() if param_name.startswith(prefix)), None)
