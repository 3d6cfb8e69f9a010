"""TOML configuration: :func:`relaysec.config.load_config` (file and ``--set`` overrides) and
:func:`~relaysec.config_schema.validate`.

Input: byte 0 picks the mode. Mode 0: the rest is a TOML file given to ``load_config``. Mode 1:
the rest is up to four ``key.path=value`` override lines (``parse_override``, as ``--set``).
Invariants: rejections are :class:`relaysec.config_schema.ConfigError`; an accepted configuration
survives ``to_toml`` (``tomllib`` reads back the same dict, as its docstring promises), and the
helpers the runtime calls on it (``redacted``, ``stations_by_role``, ``link_params``,
``check_air_speed``) work on it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from relaysec import config as c
from relaysec.config_schema import ROLES, ConfigError
from tests.fuzz._core import Reader, Violation, check

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ALLOWED = (ConfigError,)

_dir: Path | None = None


def setup() -> None:
    """A private temporary directory for the TOML file, removed at exit."""
    global _dir
    shm = Path("/dev/shm")
    _dir = Path(tempfile.mkdtemp(prefix="relaysec-fuzz-config-",
                                 dir=shm if shm.is_dir() else None))
    atexit.register(shutil.rmtree, _dir, True)


def one_input(data: bytes) -> None:
    """Load the configuration described by ``data`` and use it."""
    assert _dir is not None
    r = Reader(data)
    if r.u8() & 1 == 0:
        path = _dir / "fuzz.toml"
        path.write_bytes(r.rest())
        cfg = c.load_config(path)
    else:
        lines = r.rest().decode("utf-8", "replace").split("\n")[:4]
        cfg = c.load_config(overrides=[c.parse_override(line) for line in lines])
    text = c.to_toml(cfg)
    try:
        back = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Violation("to_toml_invalid", str(exc)) from exc
    check(back == cfg, "to_toml_round_trip", "")
    c.redacted(cfg)
    names = [st["name"] for st in cfg["stations"]]
    for role in ROLES:
        c.stations_by_role(cfg, role)
    for a in names[:4]:
        c.station(cfg, a)
        for b in names[:4]:
            c.link_params(cfg, a, b)
    c.check_air_speed(cfg, cfg["stations"])
