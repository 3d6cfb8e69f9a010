"""One atheris run (a subprocess of ``python -m tests.fuzz`` or of the CI smoke test).

Usage: ``python -m tests.fuzz._worker NAME[,NAME...] FINDINGS_ROOT [--stop-on-crash] --
LIBFUZZER_ARGS``.

The packages under test are instrumented for coverage as the harnesses import them (the numba
kernel modules excepted: numba compiles their bytecode). With several names, one process fuzzes
them all: the first byte of an input picks the harness (:func:`tests.fuzz._core.multiplex`), which
pays the start-up (imports) once -- what the CI smoke test does.

A finding (see :func:`tests.fuzz._core.execute`) is saved to ``FINDINGS_ROOT/<harness>/`` the first
time its signature shows up -- ``crash-<sha1>`` (the harness's own input, without the selector
byte) plus a ``.txt`` with the traceback -- and the run goes on looking for *other* findings,
unless ``--stop-on-crash`` hands the exception to libFuzzer (which then stops and writes its own
``crash-<sha1>``). Each new finding is also announced on stderr as ``NEW_FINDING <signature>``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    """Run the harnesses named in ``argv`` under atheris (never returns: libFuzzer exits)."""
    import atheris

    from tests.fuzz import _core

    sep = argv.index("--") if "--" in argv else len(argv)
    own, libfuzzer = argv[:sep], argv[sep + 1 :]
    names, root = own[0].split(","), Path(own[1])
    stop = "--stop-on-crash" in own
    include = sorted({pkg for n in names for pkg in _core.HARNESSES[n].instrument})
    with atheris.instrument_imports(include=include, exclude=list(_core.NUMBA_MODULES)):
        mods = [_core.load(n) for n in names]
    for mod in mods:
        _core.prepare(mod)
    for n in names:  # libFuzzer's -artifact_prefix must exist
        (root / n).mkdir(parents=True, exist_ok=True)
    known = {n: _core.known_signatures(root / n) for n in names}

    def test_one_input(data: bytes) -> None:
        k, sub = _core.multiplex(len(names), data)
        try:
            _core.execute(mods[k], sub)
        except Exception as exc:
            sig = _core.signature(exc)
            if sig not in known[names[k]]:
                known[names[k]].add(sig)
                _core.save_finding(root / names[k], names[k], sub, exc)
                print(f"NEW_FINDING {names[k]}: {sig}", file=sys.stderr, flush=True)
            if stop:
                raise

    atheris.Setup([sys.argv[0], *libfuzzer], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
