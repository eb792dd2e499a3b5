"""The machine this process computes on, as a result records it (:class:`~rltransfer.records.machine.Machine`:
the record is data and imports no torch; reading torch's CPU capability here does)."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

from rltransfer.records.machine import Machine


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's entries of Linux's ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


@functools.cache
def this_machine() -> Machine:
    """The machine this process computes on."""
    import torch

    info = _cpuinfo()
    cpu = info.get("model name") or platform.processor() or platform.machine() or "unknown"
    return Machine(cpu=cpu, vendor=info.get("vendor_id"), isa=torch.backends.cpu.get_cpu_capability())
