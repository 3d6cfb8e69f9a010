"""Compile the numba kernels of a cold checkout in a second process, started as early as
possible (``relaysec trial`` does it before building the cell; :func:`relaysec.cell.warm_up`
otherwise). Light on purpose: nothing here imports numba, ``phy`` or ``stack``.

The child compiles the Viterbi decoder's kernels (one long block: its split paths too), then
the loopback medium's and ``stack.mac.warm_up``'s, while the first process compiles the rest of
the modem's (its receive chain alone ~25 s of a Zen 1 core, after the decoder); numba's on-disk
cache hands the child's work over. On two cores the first run then costs about the longer of
the two halves instead of their sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent   # the source tree: stack/, phy/, hw/ beside
_child: subprocess.Popen[bytes] | None = None


def compiled(package: str, names: Iterable[str]) -> bool:
    """Whether numba has cached kernels matching *names* (``module.`` for any of a module,
    ``module.function``) of *package* (a directory of the source tree, e.g. ``"phy"`` or
    ``"stack/crypto/ccm"``): beside the source, or under ``NUMBA_CACHE_DIR``
    (``<dir>/<package>_<hash>/``) when set."""
    pkg = _ROOT / package
    where = os.environ.get("NUMBA_CACHE_DIR")
    dirs = list(Path(where).glob(f"{pkg.name}_*")) if where else [pkg / "__pycache__"]
    return any(any(d.glob(f"{n}*.nbi")) for d in dirs if d.is_dir() for n in names)


#: The packages whose kernels numba caches (directories of the source tree).
PACKAGES = ("phy", "hw", "stack", "relaysec")


def cache_files(root: Path = _ROOT, packages: Iterable[str] = PACKAGES) -> list[Path]:
    """numba's cache files (``*.nbi`` indexes, ``*.nbc`` code) of the kernels under *root*'s
    *packages*: beside each source directory (``__pycache__/``), or, with ``NUMBA_CACHE_DIR``
    set, in the directory numba names after it there (``<dir name>_<SHA-1 of its absolute
    path>``, ``numba.core.caching._CacheLocator.get_suitable_cache_subpath``) -- only this
    tree's, never another project's in a shared cache directory."""
    import hashlib

    where = os.environ.get("NUMBA_CACHE_DIR")
    out: list[Path] = []
    for package in packages:
        top = Path(root) / package
        if not top.is_dir():
            continue
        for src in sorted({p.parent for p in top.rglob("*.py")}):
            if "__pycache__" in src.parts:
                continue
            if where:
                d = os.path.abspath(src)
                digest = hashlib.sha1(d.encode()).hexdigest()
                cache = Path(where) / f"{os.path.basename(d)}_{digest}"
            else:
                cache = src / "__pycache__"
            if cache.is_dir():
                out += sorted(p for p in cache.iterdir() if p.suffix in (".nbi", ".nbc"))
    return out


_DECODERS = ["viterbi_lanes.viterbi_k7", "viterbi_kernels.viterbi_k7", "viterbi_float.viterbi_k7"]
"""numba cache names of the Viterbi decoders (any one compiled: the modem has run here)."""


def cold() -> bool:
    """Whether the security kernels or the Viterbi decoder were never compiled from here."""
    stack_done = compiled("stack", ["*."]) or compiled("stack/crypto/ccm", ["*."])
    return not (stack_done and compiled("phy", _DECODERS))


def start_child() -> subprocess.Popen[bytes] | None:
    """The compiling child process: started now when the cache is cold and two cores are
    there (at most once per process), else None."""
    global _child
    if _child is not None:
        return _child
    if not cold() or (os.cpu_count() or 1) < 2:
        return None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    code = ("import numpy as np; from phy import viterbi; "
            "viterbi.decode(np.zeros(24012, np.float32)); "
            "from hw._medium import warm_up; warm_up(); "
            "from stack.mac import warm_up; warm_up()")
    try:
        _child = subprocess.Popen([sys.executable, "-c", code], cwd=_ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None   # the first process compiles everything itself
    return _child


def decoder_cache_name() -> str:
    """The prefix of the numba cache file of the Viterbi decoder the modem uses on this CPU
    (numba names it ``<module>.<function>-<line>...``, the module by its last part)."""
    from phy.viterbi import default_decoder, viterbi_k7, viterbi_k7_simd

    fn = (viterbi_k7_simd if default_decoder() == "int16" else viterbi_k7).py_func
    return f"{fn.__module__.rpartition('.')[2]}.{fn.__name__}-"


def await_decoder(child: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait (at most *timeout*) until *child* has cached the Viterbi decoder the modem uses on
    this CPU, or ended: the first process then loads it instead of compiling it too."""
    name = decoder_cache_name()
    end = time.monotonic() + timeout
    while not compiled("phy", [name]) and child.poll() is None and time.monotonic() < end:
        time.sleep(0.05)


__all__ = ["await_decoder", "cold", "compiled", "decoder_cache_name", "start_child"]
