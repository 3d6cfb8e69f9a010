"""Machine and version facts recorded by every benchmark, so numbers can be compared later.

``machine_info()`` returns a JSON-ready dict: CPU model, logical cores, the CPU flags that matter
for our kernels, load average at the time of the run, and the versions of python, numpy, numba,
llvmlite and cryptography. ``load_warning()`` returns a sentence to print when the machine is busy
(timings are then noisy), else ``None``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from importlib import metadata

_FLAGS_OF_INTEREST = ("aes", "vaes", "pclmulqdq", "avx", "avx2", "avx512f", "avx512bw", "avx512vl",
                      "avx512vbmi", "sse4_2")


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags, _ = _cpuinfo()
    return model, flags


def cpu_mhz() -> float | None:
    """Clock of the first CPU as /proc/cpuinfo reports it (nominal on most VMs), else ``None``."""
    return _cpuinfo()[2]


def _cpuinfo() -> tuple[str, list[str], float | None]:
    model = platform.processor() or platform.machine()
    flags: list[str] = []
    mhz: float | None = None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    have = set(value.split())
                    flags = [fl for fl in _FLAGS_OF_INTEREST if fl in have]
                elif key == "cpu MHz" and mhz is None:
                    with contextlib.suppress(ValueError):
                        mhz = float(value)
                if model and flags and mhz is not None:
                    break
    except OSError:
        pass
    return model, flags, mhz


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> tuple[float, float, float] | None:
    """The 1/5/15-minute load averages, or ``None`` where the OS does not report them."""
    try:
        return os.getloadavg()
    except OSError:
        return None


def machine_info() -> dict[str, object]:
    """CPU model, cores, relevant CPU flags, load average and library versions of this run."""
    model, flags = _cpu_model_and_flags()
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_flags": flags,
        "cpu_mhz": cpu_mhz(),
        "load_average": load_average(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "llvmlite": _version("llvmlite"),
        "cryptography": _version("cryptography"),
    }


def load_warning(threshold_per_core: float = 0.5) -> str | None:
    """A warning sentence when the 1-minute load exceeds ``threshold_per_core`` × cores."""
    la = load_average()
    cores = os.cpu_count() or 1
    if la is None or la[0] <= threshold_per_core * cores:
        return None
    return (
        f"WARNING: load average {la[0]:.2f} on {cores} cores: the machine is shared and busy, "
        "timings below are noisy and likely pessimistic."
    )


def format_machine(info: dict[str, object]) -> str:
    """One-paragraph human summary of :func:`machine_info`."""
    la = info.get("load_average")
    la_s = "n/a" if la is None else "/".join(f"{x:.2f}" for x in la)  # type: ignore[union-attr]
    return (
        f"CPU: {info['cpu_model']} ({info['logical_cores']} logical cores, flags: "
        f"{' '.join(info['cpu_flags']) or 'n/a'}); load {la_s}\n"  # type: ignore[arg-type]
        f"python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, "
        f"llvmlite {info['llvmlite']}, cryptography {info['cryptography']}"
    )


def announce() -> dict[str, object]:
    """Print the machine line (and the load warning, if any) every benchmark starts with, and
    return :func:`machine_info` for its JSON."""
    info = machine_info()
    print(format_machine(info))
    warn = load_warning()
    if warn:
        print(warn)
    return info
