"""The machine a result records: what it reads, and which machines count as one kind."""

from __future__ import annotations

import torch

from rltransfer import hardware
from rltransfer.hardware import this_machine
from rltransfer.records.machine import Machine

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu avx avx2

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 2
"""


def test_the_first_processor_of_cpuinfo_is_read(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = hardware._cpuinfo(path)
    assert info["vendor_id"] == "AuthenticAMD" and info["model name"] == "AMD EPYC"
    assert hardware._cpuinfo(tmp_path / "absent") == {}


def test_this_machine_names_torchs_kernels():
    m = this_machine()
    assert m.isa == torch.backends.cpu.get_cpu_capability() and m.cpu
    assert Machine.model_validate(m.model_dump()) == m


def test_one_kind_is_one_vendor_and_one_torch_capability():
    intel = Machine(cpu="Intel Xeon", vendor="GenuineIntel", isa="AVX512")
    assert intel.same_kind(Machine(cpu="Intel Xeon Platinum", vendor="GenuineIntel", isa="AVX512"))
    assert not intel.same_kind(Machine(cpu="Intel Xeon", vendor="GenuineIntel", isa="AVX2"))
    assert not intel.same_kind(Machine(cpu="AMD EPYC", vendor="AuthenticAMD", isa="AVX512"))
    # A record without the capability (an older publication's) is compared by vendor.
    assert Machine(cpu="Intel Xeon", vendor="GenuineIntel").same_kind(intel)
    assert str(intel) == "Intel Xeon (GenuineIntel, torch AVX512)"
    assert str(Machine(cpu="arm64")) == "arm64"


def test_a_training_process_computes_on_one_thread_and_keeps_freed_memory():
    import platform
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(2)\n"
        "from rltransfer.hardware import _keep_freed_memory, train_on_one_core\n"
        "train_on_one_core(); print(torch.get_num_threads(), _keep_freed_memory())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "1"
    # glibc accepts both thresholds (older releases refuse some values, and the setting would be lost)
    assert out[1] == str(platform.libc_ver()[0] == "glibc")
