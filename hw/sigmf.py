"""SigMF recordings of received IQ: what a radio heard, with enough metadata to replay it.

A recording is the SigMF pair ``NAME.sigmf-data`` (``cf32_le``: complex64 in the project's full
scale, so ADC code ``c`` is ``c / 2048``) and ``NAME.sigmf-meta`` (JSON), written with the
``sigmf`` package and validated against the SigMF schema when closed. Metadata:

- global: ``core:sample_rate``, ``core:datatype``, ``core:hw``, ``core:recorder``,
  ``core:description``, and the ``relaysec`` extension: ``relaysec:seed``, ``relaysec:config``
  (the run's configuration; any key that names secret material — ``key``, ``psk``, ``secret``,
  ``msk``, ``pmk``, ``ak``, ``kek``, ``tek``, ``password`` — is replaced by ``"<redacted>"``),
  ``relaysec:radio``;
- captures: ``core:sample_start``, ``core:frequency`` (RX LO, Hz), ``core:datetime`` (UTC, when
  the first sample of the segment was recorded); :meth:`SigMFRecorder.retune` starts a new one;
- annotations: one per detected burst, ``core:sample_start``/``core:sample_count``,
  ``core:label``, optional ``core:comment`` and band edges, and ``relaysec:<field>`` for whatever
  the detector reports (``crc_ok``, ``snr_db``, ``cfo_hz``, ``evm_db``, ``src``, ``dst``, ...).

:class:`RecordingRadio` wraps any :class:`hw.radio.Radio` and records everything it receives, so
the runtime's ``--record DIR`` is one wrapper per radio. :func:`read_recording` loads a recording
back (validating it and its checksum).
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from hw.errors import RadioError
from hw.radio import RadioCaps

EXTENSION = {"name": "relaysec", "version": "0.1.0", "optional": True}
DATATYPE = "cf32_le"
_SECRET_WORDS = ("key", "psk", "secret", "msk", "pmk", "kek", "tek", "password")
REDACTED = "<redacted>"


class RecordingError(RadioError):
    """A SigMF recording could not be written or read (message says what)."""

    reason = "recording"


def _is_secret(name: str) -> bool:
    low = name.lower()
    return any(w in low for w in _SECRET_WORDS) or low in ("ak", "aks") or low.endswith("_ak")


def _jsonable(value: Any, *, redact: bool = True) -> Any:
    """Plain JSON types (numpy scalars/arrays converted), secret-named keys redacted."""
    if isinstance(value, dict):
        return {str(k): (REDACTED if redact and _is_secret(str(k)) else _jsonable(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return REDACTED  # raw bytes in a config are key material more often than not
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _paths(base: str | Path) -> tuple[Path, Path]:
    p = Path(base)
    for suffix in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if p.name.endswith(suffix):
            p = p.with_name(p.name[: -len(suffix)])
    return p.with_name(p.name + ".sigmf-data"), p.with_name(p.name + ".sigmf-meta")


class SigMFRecorder:
    """Streams received IQ to ``BASE.sigmf-data`` and writes ``BASE.sigmf-meta`` on close.

    Thread-safe. ``write`` returns the recording's sample index of the first sample written, which
    is what :meth:`annotate` takes.
    """

    def __init__(self, base: str | Path, *, sample_rate: float, frequency_hz: float,
                 seed: int | None = None, config: dict[str, Any] | None = None,
                 radio: str = "", hw: str = "", description: str = "",
                 bandwidth_hz: float | None = None) -> None:
        if not sample_rate > 0:
            raise RecordingError(f"sample_rate must be > 0, got {sample_rate!r}")
        self.data_path, self.meta_path = _paths(base)
        self.sample_rate = float(sample_rate)
        self.frequency_hz = float(frequency_hz)
        self.bandwidth_hz = bandwidth_hz
        self.seed = seed
        self.config = _jsonable(config or {})
        self.radio = radio
        self.hw = hw
        self.description = description
        self._lock = threading.Lock()
        self._count = 0
        self._captures: list[dict[str, Any]] = []
        self._pending_capture: dict[str, Any] | None = {"core:frequency": self.frequency_hz}
        self._annotations: list[dict[str, Any]] = []
        try:
            self.data_path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.data_path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise RecordingError(f"cannot create {self.data_path}: {exc}") from exc
        self.closed = False

    @property
    def samples_written(self) -> int:
        """Number of samples in the recording so far."""
        return self._count

    def write(self, iq: np.ndarray) -> int:
        """Append samples (any complex array, stored as complex64); returns the start index."""
        x = np.ascontiguousarray(iq, dtype=np.complex64)
        if x.ndim != 1:
            raise RecordingError(f"recordings take 1-D sample arrays, got shape {x.shape}")
        with self._lock:
            if self.closed:
                raise RecordingError(f"{self.data_path.name} is closed")
            start = self._count
            if self._pending_capture is not None:
                self._captures.append({"core:sample_start": start, **self._pending_capture,
                                       "core:datetime": _utc_now()})
                self._pending_capture = None
            self._fh.write(x.astype("<c8", copy=False).tobytes())
            self._count += x.size
            return start

    def retune(self, frequency_hz: float) -> None:
        """The RX LO changed: samples written from now on belong to a new capture segment."""
        with self._lock:
            self.frequency_hz = float(frequency_hz)
            self._pending_capture = {"core:frequency": self.frequency_hz}

    def annotate(self, start: int, length: int, *, label: str = "burst",
                 comment: str | None = None, **fields: Any) -> None:
        """Mark ``[start, start+length)`` (recording sample indices), e.g. a detected burst.

        Extra ``fields`` are stored as ``relaysec:<name>`` (JSON types; numpy scalars allowed).
        """
        if start < 0 or length < 0:
            raise RecordingError(f"annotation start/length must be >= 0, got {start}, {length}")
        ann: dict[str, Any] = {"core:sample_start": int(start), "core:sample_count": int(length),
                               "core:label": str(label)}
        if comment:
            ann["core:comment"] = str(comment)
        if self.bandwidth_hz:
            ann["core:freq_lower_edge"] = self.frequency_hz - self.bandwidth_hz / 2
            ann["core:freq_upper_edge"] = self.frequency_hz + self.bandwidth_hz / 2
        for k, v in fields.items():
            ann[f"relaysec:{k}"] = REDACTED if _is_secret(k) else _jsonable(v)
        with self._lock:
            self._annotations.append(ann)

    def close(self) -> Path:
        """Finish the data file, write and validate the metadata; returns the meta path."""
        from sigmf import SigMFFile

        with self._lock:
            if self.closed:
                return self.meta_path
            self.closed = True
            self._fh.close()
            if not self._captures:
                self._captures.append({"core:sample_start": 0,
                                       "core:frequency": self.frequency_hz,
                                       "core:datetime": _utc_now()})
            info: dict[str, Any] = {
                "core:datatype": DATATYPE,
                "core:sample_rate": self.sample_rate,
                "core:recorder": "relaysec",
                "core:extensions": [dict(EXTENSION)],
                "relaysec:config": self.config,
            }
            if self.hw:
                info["core:hw"] = self.hw
            if self.description:
                info["core:description"] = self.description
            if self.seed is not None:
                info["relaysec:seed"] = int(self.seed)
            if self.radio:
                info["relaysec:radio"] = self.radio
            try:
                # sigmf cannot memory-map an empty data file: describe it without one
                meta = SigMFFile(data_file=str(self.data_path) if self._count else None,
                                 global_info=info)
                for cap in self._captures:
                    start = cap["core:sample_start"]
                    meta.add_capture(start, metadata={k: v for k, v in cap.items()
                                                      if k != "core:sample_start"})
                for ann in sorted(self._annotations, key=lambda a: a["core:sample_start"]):
                    meta.add_annotation(ann["core:sample_start"], ann["core:sample_count"],
                                        metadata={k: v for k, v in ann.items() if k not in (
                                            "core:sample_start", "core:sample_count")})
                meta.tofile(str(self.meta_path), overwrite=True)  # validates against the schema
            except Exception as exc:  # sigmf raises its own error types and jsonschema's
                raise RecordingError(f"cannot write {self.meta_path.name}: {exc}") from exc
            return self.meta_path

    def __enter__(self) -> SigMFRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass
class Recording:
    """A SigMF recording loaded back."""

    samples: np.ndarray
    sample_rate: float
    frequency_hz: float
    datetime: str | None
    seed: int | None
    config: dict[str, Any]
    radio: str
    annotations: list[dict[str, Any]] = field(default_factory=list)
    captures: list[dict[str, Any]] = field(default_factory=list)
    global_info: dict[str, Any] = field(default_factory=dict)


def read_recording(path: str | Path) -> Recording:
    """Load and validate a recording (``.sigmf-meta``, ``.sigmf-data`` or the base name)."""
    from sigmf import sigmffile

    data_path, meta_path = _paths(path)
    if not meta_path.exists():
        raise RecordingError(f"no SigMF metadata at {meta_path}")
    if not data_path.exists():
        raise RecordingError(f"no SigMF data file next to {meta_path.name}")
    try:
        if data_path.stat().st_size == 0:  # sigmf cannot memory-map an empty file
            from sigmf import SigMFFile

            rec = SigMFFile(metadata=json.loads(meta_path.read_text()))
        else:
            rec = sigmffile.fromfile(str(meta_path))
        rec.validate()
        info = rec.get_global_info()
        if "core:sample_rate" not in info:  # optional in SigMF, needed to replay
            raise RecordingError(f"{meta_path.name}: the global metadata has no "
                                 "core:sample_rate")
        if data_path.stat().st_size == 0:
            samples = np.zeros(0, np.complex64)
        elif info.get("core:datatype") != DATATYPE:
            # other recorders' files: let sigmf convert to complex
            samples = np.asarray(rec.read_samples(), dtype=np.complex64)
            if samples.ndim != 1:  # several channels (core:num_channels > 1), or a scalar
                raise RecordingError(
                    f"{meta_path.name}: samples of shape {samples.shape}: only single-channel "
                    "recordings can be replayed")
        else:
            samples = np.fromfile(data_path, dtype="<c8").astype(np.complex64, copy=False)
        captures = rec.get_captures()
        annotations = rec.get_annotations()
    except RecordingError:
        raise
    except Exception as exc:
        raise RecordingError(f"invalid SigMF recording {meta_path.name}: {exc}") from exc
    first = captures[0] if captures else {}
    return Recording(
        samples=samples,
        sample_rate=float(info["core:sample_rate"]),
        frequency_hz=float(first.get("core:frequency", 0.0)),
        datetime=first.get("core:datetime"),
        seed=info.get("relaysec:seed"),
        config=info.get("relaysec:config", {}),
        radio=info.get("relaysec:radio", ""),
        annotations=list(annotations),
        captures=list(captures),
        global_info=dict(info),
    )


class RecordingRadio:
    """A :class:`hw.radio.Radio` wrapper that records every received sample to SigMF.

    ``receive`` returns exactly what the wrapped radio returned and appends it to the recorder;
    :attr:`rx_index` is the recording index of the next received sample, so the runtime can
    annotate a burst found at offset ``k`` of a window that started at ``rx_index`` before the
    call. Everything else is delegated. ``close`` closes the radio and writes the metadata.
    """

    def __init__(self, radio: Any, recorder: SigMFRecorder) -> None:
        self.radio = radio
        self.recorder = recorder
        # every sample must reach the recording: never skip unrendered
        self.caps = RadioCaps(timed_tx=radio.caps.timed_tx, skip=False,
                              stream=radio.caps.stream)

    @property
    def sample_rate(self) -> float:
        return float(self.radio.sample_rate)

    @property
    def stats(self) -> Any:
        return self.radio.stats

    @property
    def rx_index(self) -> int:
        """Recording sample index of the next sample ``receive`` returns."""
        return self.recorder.samples_written

    def transmit(self, iq: np.ndarray, **kwargs: Any) -> Any:
        return self.radio.transmit(iq, **kwargs)

    def receive(self, n: int) -> np.ndarray:
        iq = self.radio.receive(n)
        self.recorder.write(iq)
        return iq

    # the streaming timeline (only when ``caps.stream``: see hw.radio.StreamingRadio)
    def tx_horizon(self) -> int | None:
        return self.radio.tx_horizon()  # type: ignore[no-any-return]

    def track(self, placed: int, heard: int) -> None:
        self.radio.track(placed, heard)

    def take_rx_slip(self) -> int | None:
        return self.radio.take_rx_slip()  # type: ignore[no-any-return]

    def catch_up(self) -> int:
        """Skipped samples were never received, so there is nothing to record for them."""
        return self.radio.catch_up()  # type: ignore[no-any-return]

    def timeline_report(self) -> dict[str, float | int | None]:
        return self.radio.timeline_report()  # type: ignore[no-any-return]

    def skip(self, n: int) -> None:
        """Receive and record ``n`` samples (a recording keeps every sample)."""
        self.receive(n)

    def tune(self, **kwargs: Any) -> None:
        self.radio.tune(**kwargs)
        lo = kwargs.get("rx_lo_hz", kwargs.get("lo_hz"))
        if lo is not None:
            self.recorder.retune(float(lo))

    def annotate(self, start: int, length: int, **fields: Any) -> None:
        """Shortcut for ``recorder.annotate``."""
        self.recorder.annotate(start, length, **fields)

    def close(self) -> None:
        try:
            self.radio.close()
        finally:
            self.recorder.close()

    def __getattr__(self, name: str) -> Any:
        if name in ("radio", "recorder"):
            raise AttributeError(name)
        return getattr(self.radio, name)

    def __enter__(self) -> RecordingRadio:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def meta_summary(path: str | Path) -> str:
    """One-line-per-field text summary of a recording's metadata (for the CLI)."""
    rec = read_recording(path)
    lines = [f"{_paths(path)[1].name}: {rec.samples.size} samples at {rec.sample_rate:g} S/s, "
             f"LO {rec.frequency_hz / 1e6:g} MHz, recorded {rec.datetime}",
             f"  radio {rec.radio or '?'}, seed {rec.seed}, {len(rec.annotations)} annotations",
             f"  config {json.dumps(rec.config, sort_keys=True)[:200]}"]
    return "\n".join(lines)
