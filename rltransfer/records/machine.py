"""The machine a run or a pre-training computed on: besides the code and the libraries' versions, what decides
a result's last bits.

torch picks its vectorised kernels by the CPU (ATen's CPU capability: AVX2, AVX-512...), and MKL, which
computes its matrix products, picks its code path by the CPU's vendor and instruction sets. Kernels of
different paths round differently in the last bits, and training amplifies the difference: the same seed on
the same code and libraries gives the same curve on the same kind of CPU only (measured: a quick-start run
published from an Intel Xeon differs from its re-run on an AMD EPYC at its first evaluation, 40.2 against
40.3). A result records its machine (:class:`Machine`), so that ``rltransfer verify`` can tell a code
change from another CPU.
"""

from __future__ import annotations

from pydantic import ConfigDict

from rltransfer.records.base import Record


class Machine(Record):
    """A CPU: its model, its vendor and the kernels torch dispatches to on it."""

    model_config = ConfigDict(frozen=True)

    cpu: str
    """The model name the OS gives (a VM's may be generic: ``AMD EPYC``)."""
    vendor: str | None = None
    """The CPU's vendor id (``GenuineIntel``, ``AuthenticAMD``); None where unknown."""
    isa: str | None = None
    """torch's CPU capability (``torch.backends.cpu.get_cpu_capability()``: ``AVX2``, ``AVX512``...), which
    ``ATEN_CPU_CAPABILITY`` can lower; None where unknown."""

    def same_kind(self, other: Machine) -> bool:
        """Whether results of the two are expected to agree bit for bit: the same vendor and (where both
        are known) the same torch capability. The model name is not compared (VMs mask it)."""
        if self.vendor != other.vendor:
            return False
        return self.isa is None or other.isa is None or self.isa == other.isa

    @property
    def kind(self) -> str:
        """What :meth:`same_kind` compares, as a file name: ``AuthenticAMD-AVX2``."""
        return f"{self.vendor or 'unknown'}-{self.isa or 'unknown'}".replace("/", "_").replace(" ", "_")

    def __str__(self) -> str:
        extra = ", ".join(x for x in (self.vendor, f"torch {self.isa}" if self.isa else None) if x)
        return f"{self.cpu} ({extra})" if extra else self.cpu
