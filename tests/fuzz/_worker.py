"""One atheris run of one harness (a subprocess of ``python -m tests.fuzz``).

Usage: ``python -m tests.fuzz._worker HARNESS FINDINGS_DIR [--stop-on-crash] -- LIBFUZZER_ARGS``.

The packages under test are instrumented for coverage as the harness imports them (the numba
kernel modules excepted: numba compiles their bytecode). A finding (see :func:`tests.fuzz._core.
execute`) is saved to FINDINGS_DIR the first time its signature shows up -- ``crash-<sha1>`` plus a
``.txt`` with the traceback -- and the run goes on looking for *other* findings, unless
``--stop-on-crash`` hands the exception to libFuzzer (which then stops and writes its own
``crash-<sha1>``). Each new finding is also announced on stderr as ``NEW_FINDING <signature>``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    """Run the harness named in ``argv`` under atheris (never returns: libFuzzer exits)."""
    import atheris

    from tests.fuzz import _core

    sep = argv.index("--") if "--" in argv else len(argv)
    own, libfuzzer = argv[:sep], argv[sep + 1 :]
    name, findings = own[0], Path(own[1])
    stop = "--stop-on-crash" in own
    spec = _core.HARNESSES[name]
    with atheris.instrument_imports(include=list(spec.instrument), exclude=list(
            _core.NUMBA_MODULES)):
        mod = _core.load(name)
    _core.prepare(mod)
    known = _core.known_signatures(findings)

    def test_one_input(data: bytes) -> None:
        try:
            _core.execute(mod, data)
        except Exception as exc:
            sig = _core.signature(exc)
            if sig not in known:
                known.add(sig)
                _core.save_finding(findings, name, data, exc)
                print(f"NEW_FINDING {sig}", file=sys.stderr, flush=True)
            if stop:
                raise

    atheris.Setup([sys.argv[0], *libfuzzer], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv[1:])
