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


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters (``malloc.h``)."""

TRIM_THRESHOLD = 128 << 20
"""Bytes of freed memory at the top of its heap a training process keeps for its next allocations."""

MMAP_THRESHOLD = 32 << 20
"""The size from which a block is mapped on its own (the ceiling of glibc's own adjustable threshold on
64-bit systems)."""


@functools.cache
def _keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks for re-use instead of returning them to the system.

    A batched update allocates and frees tensors of a few hundred KiB to a few MiB at every minibatch
    (10 CartPole seeds: ``[2560, 64]`` activations and their gradients). By default glibc maps each such
    block on its own, or trims the top of its heap once a minibatch's tensors are freed, and the next
    minibatch pays a page fault for every 4 KiB it touches again: 260,000 to 410,000 faults against 86,000
    in a 5,000-step batch of 10 CartPole seeds (AMD EPYC VM; a few percent of the batch's time). The
    arithmetic does not change (torch aligns every tensor to 64 bytes either way). False where the C library
    is not glibc."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (macOS, musl): nothing to set
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def train_on_one_core() -> None:
    """Set this process up as a grid's training process: one torch thread (the grid runs a process per core)
    and freed memory kept for re-use (:func:`_keep_freed_memory`)."""
    import torch

    torch.set_num_threads(1)
    _keep_freed_memory()
