"""The CCM engines: which exist, which can run on this CPU, which one a call gets.

``"reference"``
    One ``cryptography`` ``AESCCM`` call per item. Always available; the yardstick for the others.
``"numba-vaes512"`` / ``"numba-vaes256"``
    The AES-NI engine's lockstep kernel (8 lanes) with AES rounds on 512-bit (4 lanes per
    instruction) or 256-bit (2 lanes per instruction) VAES vectors. Only offered when the CPU
    numba compiles for has VAES (and AVX-512F for 512, AVX2 for 256).
``"numba-aesni"``
    numba kernel on AES-NI (LLVM intrinsics), 8 items in lockstep so the CBC-MAC chains of several
    items hide each other's AES latency. Only offered when the CPU numba compiles for has AES-NI:
    compiling it elsewhere makes LLVM abort the interpreter, so the check comes first.
``"numba-table"``
    numba kernel on a table-lookup AES: slower, but compiles for any CPU.

``engine=None`` / ``"auto"`` picks the first available engine of :data:`ENGINES`. The
environment variable ``RELAYSEC_CCM_ENGINE`` overrides the automatic choice;
``RELAYSEC_CCM_NO_VAES=1`` declares VAES absent (the AES-NI kernel is then the fast path) and
``RELAYSEC_CCM_NO_AESNI=1`` declares AES-NI, and with it VAES, absent (for tests and for CPUs
that misreport them).
Availability is probed once per process, from the CPU features numba will compile for, without
compiling anything.
"""

from __future__ import annotations

import functools
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

ENGINES = ("numba-vaes512", "numba-vaes256", "numba-aesni", "numba-table", "reference")
"""Every engine name, fastest first. :func:`available_engines` says which run here."""

LAYOUT = {"numba-aesni": "aesni", "numba-vaes256": "vaes256", "numba-vaes512": "vaes512"}
"""Lane layout (:data:`stack.crypto.ccm._aesni.LAYOUTS`) of each lockstep engine."""

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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


def _cpu_has(needed: tuple[str, ...]) -> tuple[bool, str]:
    """Whether numba compiles for a CPU with every LLVM feature in ``needed`` (``"aes"``,
    ``"vaes"``, ...), checked *without* compiling anything: from ``NUMBA_CPU_NAME`` /
    ``NUMBA_CPU_FEATURES`` when set, else from the host CPU's features as LLVM reads them."""
    try:
        import llvmlite.binding as llvm
        from numba.core import config
    except ImportError as exc:  # pragma: no cover - numba is a dependency
        return False, f"numba unavailable ({exc})"
    cpu_name = (config.CPU_NAME or "").strip()
    cpu_features = (config.CPU_FEATURES or "").strip()
    feats = {f.strip() for f in cpu_features.split(",") if f.strip()}
    names = " ".join(needed)
    if any(f"-{f}" in feats for f in needed):
        return False, f"NUMBA_CPU_FEATURES disables one of {names}"
    explicit = all(f"+{f}" in feats for f in needed)
    if cpu_name and cpu_name != "host":
        # numba compiles for a named CPU: only trust features NUMBA_CPU_FEATURES names.
        if explicit:
            return True, ""
        return False, f"NUMBA_CPU_NAME={cpu_name} (not the host CPU) without +{' +'.join(needed)}"
    if feats:
        return (True, "") if explicit else (False, f"NUMBA_CPU_FEATURES set without {names}")
    try:
        host = llvm.get_host_cpu_features()
    except Exception as exc:  # pragma: no cover - llvmlite without host detection
        return False, f"cannot read host CPU features ({exc})"
    missing = [f for f in needed if not host.get(f, False)]
    if missing:
        return False, f"host CPU lacks {' '.join(missing)}"
    return True, ""


def _aesni_safe() -> tuple[bool, str]:
    """Whether the AES-NI kernel may be compiled here."""
    if _env_flag("RELAYSEC_CCM_NO_AESNI"):
        return False, "disabled by RELAYSEC_CCM_NO_AESNI"
    return _cpu_has(("aes", "sse2"))


_VAES_FEATURES = {"numba-vaes256": ("vaes", "avx2"), "numba-vaes512": ("vaes", "avx512f")}
"""LLVM features each VAES engine's instructions need (the 512-bit forms are EVEX-encoded)."""


def _vaes_safe(engine: str) -> tuple[bool, str]:
    """Whether VAES engine ``engine`` may be compiled here (AES-NI, VAES, the vector width)."""
    ok, why = _aesni_safe()
    if not ok:
        return False, why
    if _env_flag("RELAYSEC_CCM_NO_VAES"):
        return False, "disabled by RELAYSEC_CCM_NO_VAES"
    return _cpu_has(_VAES_FEATURES[engine])


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
                for name in _VAES_FEATURES:
                    safe, why = _vaes_safe(name)
                    st[name] = "" if safe else why
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
    if name == "reference":  # always there: no probing (which imports numba) on this path
        return name
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
        if name == "numba-aesni" or name in _VAES_FEATURES:
            from stack.crypto.ccm import _aesni

            k = functools.partial(_aesni.run, layout=LAYOUT[name])
        elif name == "numba-table":
            from stack.crypto.ccm import _aes_table

            k = _aes_table.run
        else:
            k = _reference_kernel
        _kernels[name] = k
    return k
