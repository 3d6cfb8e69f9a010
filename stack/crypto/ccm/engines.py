"""The CCM engines: which exist, which can run on this CPU, which one a call gets.

``"reference"``
    One ``cryptography`` ``AESCCM`` call per item. Always available; the yardstick for the others.
``"numba-aesni"``
    numba kernel on AES-NI (LLVM intrinsics), 8 items in lockstep so the CBC-MAC chains of several
    items hide each other's AES latency. Only offered when the CPU numba compiles for has AES-NI:
    compiling it elsewhere makes LLVM abort the interpreter, so the check comes first.
``"numba-table"``
    numba kernel on a table-lookup AES: slower, but compiles for any CPU.

``engine=None`` / ``"auto"`` picks the first available engine of :data:`ENGINES`. The
environment variable ``RELAYSEC_CCM_ENGINE`` overrides the automatic choice, and
``RELAYSEC_CCM_NO_AESNI=1`` declares AES-NI absent (for tests and for CPUs that misreport it).
Availability is probed once per process, from the CPU features numba will compile for, without
compiling anything.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM as _PycaAESCCM

from stack.errors import MalformedError

__all__ = [
    "ENGINES",
    "Kernel",
    "available_engines",
    "default_engine",
    "engine_status",
    "kernel",
    "resolve",
]

ENGINES = ("numba-aesni", "numba-table", "reference")
"""Every engine name, fastest first. :func:`available_engines` says which run here."""

Kernel = Callable[..., None]
"""Engine entry point: ``(keys, kidx, nonces, buf, offs, lens, out, oofs, tag_len, decrypt, ok,
threads)``. Item i is read from ``buf[offs[i]:]`` and written to ``out[oofs[i]:]``; ``out`` is
``buf`` (and ``oofs`` is ``offs``) for in-place calls."""


def _reference_kernel(
    keys: np.ndarray,
    kidx: np.ndarray,
    nonces: np.ndarray,
    buf: np.ndarray,
    offs: np.ndarray,
    lens: np.ndarray,
    out: np.ndarray,
    oofs: np.ndarray,
    tag_len: int,
    decrypt: bool,
    ok: np.ndarray,
    threads: int,
) -> None:
    """One ``cryptography`` AESCCM call per item (``threads`` is ignored)."""
    ciphers: dict[int, _PycaAESCCM] = {}
    for i in range(nonces.shape[0]):
        k = int(kidx[i])
        c = ciphers.get(k)
        if c is None:
            c = ciphers[k] = _PycaAESCCM(keys[k].tobytes(), tag_length=tag_len)
        o, q, ln = int(offs[i]), int(oofs[i]), int(lens[i])
        nonce = nonces[i].tobytes()
        if decrypt:
            try:
                pt = c.decrypt(nonce, buf[o : o + ln + tag_len].tobytes(), None)
            except InvalidTag:
                out[q : q + ln] = 0
                ok[i] = False
            else:
                out[q : q + ln] = np.frombuffer(pt, dtype=np.uint8)
                ok[i] = True
        else:
            ct = c.encrypt(nonce, buf[o : o + ln].tobytes(), None)
            out[q : q + ln + tag_len] = np.frombuffer(ct, dtype=np.uint8)


_lock = threading.Lock()
_status: dict[str, str] = {}  # engine -> "" if usable, else the reason it is not (filled once)
_kernels: dict[str, Kernel] = {}
_fastest_name: str | None = None


def _aesni_safe() -> tuple[bool, str]:
    """Whether numba will compile for a CPU with AES-NI (checked *without* compiling anything)."""
    if os.environ.get("RELAYSEC_CCM_NO_AESNI", "").strip() not in ("", "0"):
        return False, "disabled by RELAYSEC_CCM_NO_AESNI"
    try:
        import llvmlite.binding as llvm
        from numba.core import config
    except ImportError as exc:  # pragma: no cover - numba is a dependency
        return False, f"numba unavailable ({exc})"
    cpu_name = (config.CPU_NAME or "").strip()
    cpu_features = (config.CPU_FEATURES or "").strip()
    feats = {f.strip() for f in cpu_features.split(",") if f.strip()}
    if "-aes" in feats or "-sse2" in feats:
        return False, "NUMBA_CPU_FEATURES disables aes"
    if cpu_name and cpu_name != "host":
        # numba compiles for a named CPU: only trust an explicit +aes in NUMBA_CPU_FEATURES.
        if "+aes" in feats:
            return True, ""
        return False, f"NUMBA_CPU_NAME={cpu_name} (not the host CPU) without +aes"
    if feats and "+aes" not in feats:
        return False, "NUMBA_CPU_FEATURES set without +aes"
    try:
        host = llvm.get_host_cpu_features()
    except Exception as exc:  # pragma: no cover - llvmlite without host detection
        return False, f"cannot read host CPU features ({exc})"
    if not host.get("aes", False) or not host.get("sse2", False):
        return False, "host CPU has no AES-NI"
    return True, ""


def _engine_status() -> dict[str, str]:
    """The status table, computed on first use (the per-call path reads it without a copy)."""
    if not _status:
        with _lock:
            if not _status:
                st = {"reference": ""}
                try:
                    import numba  # noqa: F401
                except ImportError as exc:  # pragma: no cover - numba is a dependency
                    st["numba-table"] = f"numba unavailable ({exc})"
                else:
                    st["numba-table"] = ""
                safe, why = _aesni_safe()
                st["numba-aesni"] = "" if safe else why
                _status.update(st)
    return _status


def engine_status() -> dict[str, str]:
    """Every engine name mapped to ``""`` if it can run here, else the reason it cannot."""
    return dict(_engine_status())


def available_engines() -> list[str]:
    """Engines that can run on this machine, fastest first (``"reference"`` is always there)."""
    st = _engine_status()
    return [e for e in ENGINES if st[e] == ""]


def _fastest() -> str:
    """First available engine (cached: availability does not change within a process)."""
    global _fastest_name
    if _fastest_name is None:
        _fastest_name = available_engines()[0]
    return _fastest_name


def default_engine() -> str:
    """The engine ``None``/``"auto"`` means: ``$RELAYSEC_CCM_ENGINE`` if set, else the fastest."""
    forced = os.environ.get("RELAYSEC_CCM_ENGINE", "").strip()
    if forced and forced != "auto":
        return _check_engine(forced)
    return available_engines()[0]


def _check_engine(name: str) -> str:
    if name not in ENGINES:
        raise MalformedError(f"unknown CCM engine {name!r}; known: {', '.join(ENGINES)}")
    why = _engine_status()[name]
    if why:
        raise MalformedError(f"CCM engine {name!r} is not available here: {why}")
    return name


def resolve(engine: object) -> str:
    """The engine a call with ``engine=`` runs on; :class:`MalformedError` if it cannot run."""
    if engine is None or engine == "auto":
        if not os.environ.get("RELAYSEC_CCM_ENGINE"):  # per-call path: no list, no strip
            return _fastest()
        return default_engine()
    if not isinstance(engine, str):
        raise MalformedError(f"engine must be a string, got {type(engine).__name__}")
    return _check_engine(engine)


def kernel(name: str) -> Kernel:
    """Entry point of engine ``name``; a numba engine's module is imported on its first use."""
    k = _kernels.get(name)
    if k is None:
        if name == "numba-aesni":
            from stack.crypto.ccm import _aesni

            k = _aesni.run
        elif name == "numba-table":
            from stack.crypto.ccm import _aes_table

            k = _aes_table.run
        else:
            k = _reference_kernel
        _kernels[name] = k
    return k
