"""The SigMF reader: :func:`hw.sigmf.read_recording` (and ``meta_summary``) on fuzzed files.

Input: two bytes give the length of the metadata text, which follows; the rest is the data file.
Both are written to a private temporary directory as ``rec.sigmf-meta`` / ``rec.sigmf-data`` and
read back. Invariants: rejections are :class:`hw.errors.RadioError` (``RecordingError``); what loads
is a 1-D complex64 sample array with a float sample rate and LO, list annotations and captures,
and ``meta_summary`` describes it without raising.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import sigmf.sigmffile  # noqa: F401 - hw.sigmf imports it lazily: import it here, instrumented

from hw.errors import RadioError
from hw.sigmf import meta_summary, read_recording
from tests.fuzz._core import Reader, check

ALLOWED = (RadioError,)

_dir: Path | None = None


def setup() -> None:
    """A private temporary directory (in memory where /dev/shm exists), removed at exit."""
    global _dir
    shm = Path("/dev/shm")
    _dir = Path(tempfile.mkdtemp(prefix="relaysec-fuzz-sigmf-",
                                 dir=shm if shm.is_dir() else None))
    atexit.register(shutil.rmtree, _dir, True)
    warnings.filterwarnings("ignore", module="sigmf")


def one_input(data: bytes) -> None:
    """Write the two files described by ``data`` and read the recording back."""
    assert _dir is not None
    r = Reader(data)
    meta = r.take(r.u16())
    (_dir / "rec.sigmf-meta").write_bytes(meta)
    (_dir / "rec.sigmf-data").write_bytes(r.rest())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = read_recording(_dir / "rec.sigmf-meta")
        text = meta_summary(_dir / "rec")
    check(isinstance(rec.samples, np.ndarray) and rec.samples.ndim == 1
          and rec.samples.dtype == np.complex64, "bad_samples", repr(rec.samples.dtype))
    check(isinstance(rec.sample_rate, float) and isinstance(rec.frequency_hz, float),
          "bad_numbers", "")
    check(isinstance(rec.annotations, list) and isinstance(rec.captures, list), "bad_lists", "")
    check(text.startswith("rec.sigmf-meta"), "bad_summary", text[:40])
