"""Shared machinery of the fuzz harnesses: registry, input reader, verdicts and finding signatures.

A harness is a module under :mod:`tests.fuzz.harnesses` with

* ``ALLOWED``: the exception types a rejected input may raise (the project's own: ``stack.errors``,
  ``phy.errors``, ``hw.errors``, ``relaysec.config.ConfigError``);
* ``one_input(data: bytes) -> None``: decode / drive ``data``; raise :class:`Violation` when an
  invariant breaks (a forged input accepted, a round trip that does not hold, a table growing);
* optionally ``setup() -> None``: one-time work (keys, snapshots) kept out of the per-input cost.

:func:`execute` runs one input and returns normally when the input was accepted or rejected with an
allowed exception; anything else propagates and is a *finding*. The same function serves the
atheris worker (:mod:`tests.fuzz._worker`), corpus replay in pytest and ``--replay``, so a crash
reproduces the same way everywhere. This module imports no project code: the worker must be able to
import it before atheris instruments the packages under test.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

FUZZ_DIR = Path(__file__).resolve().parent
ROOT = FUZZ_DIR.parent.parent
CORPUS_DIR = FUZZ_DIR / "corpus"
FINDINGS_DIR = FUZZ_DIR / "findings"
DICT_DIR = FUZZ_DIR / "dicts"
WORK_DIR = FUZZ_DIR / ".work"
CAMPAIGN_DIR = FUZZ_DIR / "campaign"
"""The corpora the campaigns grew (``campaign/<harness>/``), kept in the repository and read by
every later campaign; CI replays them in-process (``test_campaign_replays``), while its short
atheris passes start from the seeds (``corpus/``) only."""
"""Growing corpora and logs of campaigns (git-ignored): new entries land here, not in corpus/."""

NUMBA_MODULES = (
    "hw._medium",
    "phy.channel_kernels",
    "phy.kernels",
    "phy.presync_kernels",
    "phy.payload_kernels",
    "phy.robust_kernels",
    "phy.sync_kernels",
    "phy.track_kernels",
    "phy.tx_kernels",
    "phy.viterbi_float",
    "phy.viterbi_kernels",
    "phy.viterbi_lanes",
    "stack._burst",
    "stack.crypto.ccm._aes_table",
    "stack.crypto.ccm._aesni",
    "stack.crypto.ccm._check",
    "stack.crypto.ccm._pyobj",
)
"""Modules whose functions numba compiles from their bytecode: atheris must not instrument them
(its inserted trace calls are not numba-compilable)."""


@dataclass(frozen=True)
class Spec:
    """How to run one harness: its module, what atheris instruments, its largest input."""

    name: str
    module: str
    instrument: tuple[str, ...]
    max_len: int
    summary: str
    decoder: bool = True
    """False for harnesses whose findings are not decoder bugs (roles: reported, not fixed)."""

    @property
    def corpus(self) -> Path:
        """The committed seeds of this harness."""
        return CORPUS_DIR / self.name

    @property
    def findings(self) -> Path:
        """Where this harness's findings are saved."""
        return FINDINGS_DIR / self.name

    @property
    def dictionary(self) -> Path | None:
        """Its libFuzzer dictionary, if there is one."""
        p = DICT_DIR / f"{self.name}.dict"
        return p if p.exists() else None


def _spec(name: str, instrument: tuple[str, ...], max_len: int, summary: str,
          decoder: bool = True) -> Spec:
    return Spec(name, f"tests.fuzz.harnesses.{name}", instrument, max_len, summary, decoder)


HARNESSES: dict[str, Spec] = {s.name: s for s in (
    _spec("pkm", ("stack",), 512,
          "PKMv3/relay messages: decode(), each class's decode, expects_cmac, canonical re-encode"),
    _spec("eap", ("stack",), 512, "EAP packet codec (RFC 3748): decode, canonical re-encode"),
    _spec("eap_tls", ("stack",), 4096,
          "EAP-TLS Type-Data codec and a started EapTlsPeer fed arbitrary server messages "
          "(no success, no MSK, only SecurityError)"),
    _spec("radius", ("stack",), 4096,
          "RADIUS codec and back end: decode (canonical), verify_answer, receive_datagram of a "
          "RadiusAuthenticator with a request outstanding (drops counted, no forged success)"),
    _spec("eap_psk", ("stack",), 1024,
          "EAP-PSK codec and peer/server conversations fed genuine, mutated and arbitrary packets"),
    _spec("mpdu", ("stack",), 1024,
          "mpdu.unprotect with a fixed SA (crafted and raw MPDUs), parse/decode of plain MPDUs"),
    _spec("burst", ("stack",), 2048,
          "mac.open_burst against the per-MPDU model on crafted, mutated and raw bursts"),
    _spec("relay", ("stack",), 2048,
          "mac.decapsulate_relay round trip (encapsulate_relay, pack_relay)"),
    _spec("frames", ("stack",), 2048,
          "frame splitting: roles.base.frame_bounds against roles.framing.split_frame"),
    _spec("cmac", ("stack",), 512,
          "CMAC tuple: split_cmac, check_cmac and CmacVerifier on crafted, mutated, raw messages"),
    _spec("phy", ("phy",), 4096,
          "PHY: BurstModem.demodulate on raw IQ and on crafted bursts with arbitrary headers"),
    _spec("zone", ("phy",), 4096,
          "PHY: ZoneModem.demodulate on raw IQ and on zone bursts with crafted headers and "
          "A-MAP entries (valid masked CRCs over arbitrary fields)"),
    _spec("iiod", ("hw",), 1024, "iiod command parser of the Pluto emulator (no sockets)"),
    _spec("sigmf", ("hw", "sigmf"), 2048,
          "SigMF reader (hw.sigmf.read_recording) on fuzzed files; the sigmf package is "
          "instrumented too, to steer through its schema validation"),
    _spec("config", ("relaysec", "tomllib"), 2048,
          "TOML config: load_config / validate / overrides / to_toml round trip (tomllib is "
          "instrumented too, to steer towards valid TOML)"),
    _spec("arq", ("stack",), 1024,
          "ARQ: decode_arq (canonical) and a sender/receiver pair under loss, duplication, "
          "reordering and timers (in order, at most once, nothing lost on a clean link)"),
    _spec("roles", ("stack",), 4096,
          "stateful cell (ABS, 2 ARS, AMS; both modes): inject/mutate/replay/drop frames",
          decoder=False),
)}


def load(name: str) -> ModuleType:
    """Import the harness module ``name`` (KeyError for an unknown harness)."""
    return importlib.import_module(HARNESSES[name].module)


_ready: set[str] = set()


def prepare(mod: ModuleType) -> None:
    """Run the harness's one-time ``setup()`` (once per process)."""
    if mod.__name__ not in _ready:
        setup = getattr(mod, "setup", None)
        if setup is not None:
            setup()
        _ready.add(mod.__name__)


class Violation(AssertionError):
    """An invariant of a harness broke; ``kind`` (stable, short) names it in finding signatures."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def check(cond: object, kind: str, detail: str = "") -> None:
    """Raise :class:`Violation` ``kind`` unless ``cond`` holds."""
    if not cond:
        raise Violation(kind, detail)


def execute(mod: ModuleType, data: bytes) -> None:
    """Run one input through harness ``mod``; an allowed rejection returns normally.

    Anything else escapes: that is a finding (see :func:`signature`).
    """
    prepare(mod)
    try:
        mod.one_input(bytes(data))
    except mod.ALLOWED:
        return


def multiplex(n: int, data: bytes) -> tuple[int, bytes]:
    """Which of ``n`` harnesses an input of a multiplexed run is for, and its own bytes: with one
    harness, all of ``data``; else the first byte picks it (modulo ``n``) and the rest is its."""
    if n == 1:
        return 0, data
    return (data[0] % n if data else 0), data[1:]


def _project_frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    frames = traceback.extract_tb(tb)
    root = str(ROOT) + os.sep
    own = [f for f in frames if f.filename.startswith(root) and "/tests/fuzz/" not in f.filename]
    return own or [f for f in frames if f.filename.startswith(root)] or frames


def signature(exc: BaseException) -> str:
    """Stable identity of a finding: exception type (or violation kind) and the innermost project
    frame outside the harness, e.g. ``IndexError@stack/roles/abs.py:_on_control``."""
    kind = f"Violation[{exc.kind}]" if isinstance(exc, Violation) else type(exc).__name__
    frames = _project_frames(exc.__traceback__)
    if not frames:
        return kind
    f = frames[-1]
    try:
        rel = Path(f.filename).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        rel = Path(f.filename).name
    return f"{kind}@{rel}:{f.name}"


def describe(exc: BaseException) -> str:
    """Traceback text of a finding (what goes next to the crashing input)."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def input_id(data: bytes) -> str:
    """libFuzzer-style name of an input: SHA-1 of its bytes."""
    return hashlib.sha1(data).hexdigest()


def known_signatures(folder: Path) -> set[str]:
    """Signatures of the findings already saved in ``folder`` (first line of each ``.txt``)."""
    out: set[str] = set()
    if folder.is_dir():
        for p in folder.glob("*.txt"):
            first = p.read_text(errors="replace").splitlines()[:1]
            if first and first[0].startswith("signature: "):
                out.add(first[0][len("signature: "):].strip())
    return out


def save_finding(folder: Path, harness: str, data: bytes, exc: BaseException) -> Path:
    """Write ``crash-<sha1>`` (the input) and ``crash-<sha1>.txt`` (signature, traceback)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"crash-{input_id(data)}").resolve()
    path.write_bytes(data)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    text = (f"signature: {signature(exc)}\nharness: {harness}\n"
            f"replay: python -m tests.fuzz --harness {harness} --replay {shown}"
            f"\n\n{describe(exc)}")
    path.with_name(path.name + ".txt").write_text(text)
    return path


class Reader:
    """Consumes fuzz bytes front to back as small integers, choices and byte strings.

    Pure Python (no atheris needed to replay), total (an exhausted reader yields zeros / empty
    strings, never raises), so every byte string is a valid program for a stateful harness.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not consumed yet."""
        return len(self._data) - self._pos

    def uint(self, nbytes: int) -> int:
        """Big-endian unsigned integer of ``nbytes`` bytes (missing bytes read as zero)."""
        chunk = self._data[self._pos : self._pos + nbytes]
        self._pos += len(chunk)
        return int.from_bytes(chunk.ljust(nbytes, b"\0"), "big")

    def u8(self) -> int:
        """One byte."""
        return self.uint(1)

    def u16(self) -> int:
        """Two bytes, big-endian."""
        return self.uint(2)

    def flag(self) -> bool:
        """A boolean (low bit of one byte)."""
        return bool(self.u8() & 1)

    def below(self, n: int) -> int:
        """An integer in ``0..n-1`` (one byte when ``n <= 256``)."""
        if n <= 1:
            return 0
        return (self.u8() if n <= 256 else self.u16()) % n

    def pick(self, seq: tuple | list) -> object:
        """One element of a non-empty sequence."""
        return seq[self.below(len(seq))]

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes if that many remain, else what remains."""
        chunk = self._data[self._pos : self._pos + max(0, n)]
        self._pos += len(chunk)
        return chunk

    def blob(self, max_len: int = 255) -> bytes:
        """A length byte (or two, when ``max_len > 255``), then that many bytes (at most
        ``max_len``)."""
        n = self.u8() if max_len <= 255 else self.u16()
        return self.take(min(n, max_len))

    def rest(self) -> bytes:
        """Everything not consumed yet."""
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk


class Writer:
    """Builds programs for :class:`Reader` (used by ``make_corpus.py`` to write seeds)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def uint(self, value: int, nbytes: int) -> Writer:
        """Append ``value`` as ``nbytes`` big-endian bytes."""
        self.buf += int(value).to_bytes(nbytes, "big")
        return self

    def u8(self, value: int) -> Writer:
        """Append one byte."""
        return self.uint(value, 1)

    def u16(self, value: int) -> Writer:
        """Append two bytes, big-endian."""
        return self.uint(value, 2)

    def raw(self, data: bytes) -> Writer:
        """Append bytes as they are."""
        self.buf += data
        return self

    def blob(self, data: bytes, max_len: int = 255) -> Writer:
        """Append a length-prefixed byte string (as :meth:`Reader.blob` reads it)."""
        if max_len <= 255:
            self.u8(len(data))
        else:
            self.u16(len(data))
        self.buf += data
        return self

    def bytes(self) -> bytes:
        """The program written so far."""
        return bytes(self.buf)
