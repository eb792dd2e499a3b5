"""Gymnasium spaces to JSON and back (Box, Discrete, MultiDiscrete, MultiBinary, Dict), for bundle manifests."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rltransfer.errors import BundleError


def _floats(a: np.ndarray) -> list:
    return [
        x if np.isfinite(x) else ("inf" if x > 0 else "-inf") for x in np.asarray(a, dtype=np.float64).ravel().tolist()
    ]


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _floats(space.low),
            "high": _floats(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    raise BundleError(
        f"space {space} cannot be stored in a bundle (Box, Discrete, MultiDiscrete, MultiBinary, Dict only)"
    )


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    try:
        kind = data["type"]
        if kind == "Box":
            shape = tuple(data["shape"])
            low = np.array([float(x) for x in data["low"]], dtype=np.float64).reshape(shape)
            high = np.array([float(x) for x in data["high"]], dtype=np.float64).reshape(shape)
            return spaces.Box(low.astype(data["dtype"]), high.astype(data["dtype"]), shape, dtype=data["dtype"])
        if kind == "Discrete":
            return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(
                np.array(data["nvec"], dtype=data["dtype"]), dtype=data["dtype"], start=np.array(data["start"])
            )
        if kind == "MultiBinary":
            return spaces.MultiBinary(data["n"])
        if kind == "Dict":
            return spaces.Dict({k: space_from_json(v) for k, v in data["spaces"].items()})
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"bundle.json: malformed space description {data!r}: {err}") from None
    raise BundleError(f"bundle.json: unknown space type {kind!r}")
