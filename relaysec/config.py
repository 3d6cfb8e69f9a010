"""Trial and node configuration: built-in defaults, a TOML file, command-line overrides.

The defaults live in ``relaysec/data/default.toml`` (shipped with the package); a user file only
needs the keys it changes. Merging is a deep merge of tables; arrays (``stations``, ``links``) are
replaced whole, because merging station lists element by element would be surprising.
Command-line flags override both through dotted keys (``phy.mcs=QPSK-1/2``).

Unknown keys and values of the wrong type are rejected with a :class:`ConfigError` naming the key,
so a typo in a lab config never silently falls back to a default.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

Config = dict[str, Any]

ROLES = ("abs", "ars", "ams")
SECURITY_MODES = ("distributed", "centralized")
BACKENDS = ("loopback", "pluto")
CHANNELS = ("awgn", "pedA", "pedB", "vehA")

# Keys of station and link entries, with their types (defaults are applied per entry).
_STATION_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "role": (str,),
    "station_id": (int,),
    "psk_hex": (str,),
    "parent": (str,),
    "serving": (str,),
    "handover_target": (str,),
    "uri": (str,),
}
_LINK_KEYS: dict[str, tuple[type, ...]] = {
    "a": (str,),
    "b": (str,),
    "snr_db": (int, float),
    "channel": (str,),
}


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key and why."""


def default_config() -> Config:
    """The built-in defaults (a fresh, mutable copy)."""
    text = resources.files("relaysec").joinpath("data/default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_toml(path: str | Path) -> Config:
    """Parse a TOML file; errors name the file and the position."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None


def _merge(base: Config, over: Mapping[str, Any], where: str) -> Config:
    for key, value in over.items():
        path = f"{where}.{key}" if where else key
        if key not in base:
            raise ConfigError(f"unknown config key {path!r}")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {path!r} must be a table")
            _merge(base[key], value, path)
        else:
            base[key] = copy.deepcopy(value)
    return base


def parse_override(item: str) -> tuple[str, Any]:
    """Parse one ``key.path=value`` override; the value is read as a TOML value when it parses
    as one (numbers, booleans, quoted strings, arrays) and as a bare string otherwise."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def _set_dotted(cfg: Config, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"unknown config key {'.'.join(parts[: i + 1])!r}")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"unknown config key {key!r}")
    node[parts[-1]] = value


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[tuple[str, Any]] = (),
) -> Config:
    """Defaults, then the TOML file at *path* (if any), then *overrides* (dotted keys); validated.

    >>> cfg = load_config(overrides=[("phy.mcs", "QPSK-1/2")])
    >>> cfg["phy"]["mcs"]
    'QPSK-1/2'
    """
    cfg = default_config()
    if path is not None:
        _merge(cfg, load_toml(path), "")
    for key, value in overrides:
        _set_dotted(cfg, key, value)
    validate(cfg)
    return cfg


def _check_type(key: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"config key {key!r} must be {names}, got {type(value).__name__}")


def _check_same_types(cfg: Config, ref: Config, where: str) -> None:
    for key, ref_value in ref.items():
        path = f"{where}.{key}" if where else key
        if key in ("stations", "links"):
            continue
        value = cfg.get(key)
        if isinstance(ref_value, dict):
            _check_same_types(value, ref_value, path)
        elif isinstance(ref_value, bool):
            _check_type(path, value, (bool,))
        elif isinstance(ref_value, (int, float)):
            _check_type(path, value, (int, float))
            if not math.isfinite(value):
                raise ConfigError(f"config key {path!r} must be finite")
        else:
            _check_type(path, value, (type(ref_value),))


def validate(cfg: Config) -> None:
    """Check types, enumerations and the topology; raise :class:`ConfigError` on the first fault."""
    _check_same_types(cfg, default_config(), "")
    if cfg["schedule"]["mode"] not in ("sim", "wall"):
        raise ConfigError(f"schedule.mode must be 'sim' or 'wall', got {cfg['schedule']['mode']!r}")
    if not 0.01 <= cfg["schedule"]["ota_speed"] <= 1.0:
        raise ConfigError("schedule.ota_speed must be in [0.01, 1]")
    if cfg["backend"] not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {cfg['backend']!r}")
    if cfg["security"]["mode"] not in SECURITY_MODES:
        raise ConfigError(
            f"security.mode must be one of {SECURITY_MODES}, got {cfg['security']['mode']!r}"
        )
    if cfg["channel"]["model"] not in CHANNELS:
        raise ConfigError(
            f"channel.model must be one of {CHANNELS}, got {cfg['channel']['model']!r}"
        )
    if cfg["phy"]["frame_ms"] <= 0:
        raise ConfigError("phy.frame_ms must be positive")
    if not -60.0 <= cfg["phy"]["tx_dbfs"] <= 0.0:
        raise ConfigError("phy.tx_dbfs must be in [-60, 0] dB relative to DAC full scale")
    if not 0.0 <= cfg["traffic"]["min_delivery"] <= 1.0:
        raise ConfigError("traffic.min_delivery must be a fraction in [0, 1]")
    for key in ("packets_per_direction", "payload_bytes", "per_frame", "drain_frames"):
        if int(cfg["traffic"][key]) < 1:
            raise ConfigError(f"traffic.{key} must be at least 1")
    if cfg["traffic"]["payload_bytes"] < 24:
        raise ConfigError("traffic.payload_bytes must be at least 24 (header + digest)")

    stations = cfg["stations"]
    if not isinstance(stations, list) or not stations:
        raise ConfigError("stations must be a non-empty array of tables")
    names: dict[str, dict[str, Any]] = {}
    ids: set[int] = set()
    for i, st in enumerate(stations):
        if not isinstance(st, dict):
            raise ConfigError(f"stations[{i}] must be a table")
        for key, value in st.items():
            if key not in _STATION_KEYS:
                raise ConfigError(f"unknown config key 'stations[{i}].{key}'")
            _check_type(f"stations[{i}].{key}", value, _STATION_KEYS[key])
        for key in ("name", "role", "station_id"):
            if key not in st:
                raise ConfigError(f"stations[{i}] needs {key!r}")
        if st["role"] not in ROLES:
            raise ConfigError(f"stations[{i}].role must be one of {ROLES}, got {st['role']!r}")
        if st["name"] in names:
            raise ConfigError(f"station name {st['name']!r} used twice")
        if not 0 < st["station_id"] < 2**48 or st["station_id"] in ids:
            raise ConfigError(f"stations[{i}].station_id must be unique and in 1..2**48-1")
        if "psk_hex" in st:
            try:
                if len(bytes.fromhex(st["psk_hex"])) != 16:
                    raise ValueError
            except ValueError:
                raise ConfigError(f"stations[{i}].psk_hex must be 32 hex digits") from None
        names[st["name"]] = st
        ids.add(st["station_id"])
    abss = [s for s in stations if s["role"] == "abs"]
    if len(abss) != 1:
        raise ConfigError("the topology needs exactly one station with role 'abs'")
    for st in stations:
        for key, want in (("parent", ("abs",)), ("serving", ("abs", "ars")),
                          ("handover_target", ("abs", "ars"))):
            ref = st.get(key)
            if ref is None:
                continue
            if ref not in names:
                raise ConfigError(f"station {st['name']!r}: {key} {ref!r} is not a station")
            if names[ref]["role"] not in want:
                raise ConfigError(
                    f"station {st['name']!r}: {key} {ref!r} must have role {' or '.join(want)}"
                )
        if st["role"] == "ams" and "serving" not in st:
            raise ConfigError(f"station {st['name']!r}: an AMS needs 'serving'")
    links = cfg["links"]
    if not isinstance(links, list):
        raise ConfigError("links must be an array of tables")
    for i, link in enumerate(links):
        if not isinstance(link, dict):
            raise ConfigError(f"links[{i}] must be a table")
        for key, value in link.items():
            if key not in _LINK_KEYS:
                raise ConfigError(f"unknown config key 'links[{i}].{key}'")
            _check_type(f"links[{i}].{key}", value, _LINK_KEYS[key])
        for key in ("a", "b"):
            if link.get(key) not in names:
                raise ConfigError(f"links[{i}].{key} must name a station")
        if "channel" in link and link["channel"] not in CHANNELS:
            raise ConfigError(f"links[{i}].channel must be one of {CHANNELS}")


def is_emulator_uri(uri: str) -> bool:
    """True for a libiio network URI on the loopback interface (``ip:127.0.0.1:PORT``,
    ``ip:localhost:PORT``): a radio served on this host, i.e. ``relaysec emulate``, not a Pluto
    (a real one is reached over USB or at its own address, 192.168.2.1 by default)."""
    return bool(_EMULATOR_URI.fullmatch(uri.strip()))


_EMULATOR_URI = re.compile(r"ip:(?:127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?")


def check_air_speed(cfg: Config, stations: Iterable[Mapping[str, Any]]) -> None:
    """Refuse ``schedule.ota_speed`` != 1 with ``backend = "pluto"`` unless the radios of
    *stations* (those this process opens) are emulated: ``schedule.emulated = true``, or every
    URI is an emulator on loopback (:func:`is_emulator_uri`).

    A real Pluto's air runs at its sample rate, so a slowed clock would misplace every burst; an
    emulated one runs at whatever ``relaysec emulate --speed`` says, which must then match. This
    is checked when radios are opened, not in :func:`validate`, because ``--uris``/``--uri``
    replace the configured URIs after validation."""
    speed = float(cfg["schedule"]["ota_speed"])
    if cfg["backend"] != "pluto" or speed == 1.0 or cfg["schedule"]["emulated"]:
        return
    real = [f"{s['name']} ({s.get('uri') or 'no uri'})" for s in stations
            if not is_emulator_uri(str(s.get("uri", "")))]
    if real:
        raise ConfigError(
            f"schedule.ota_speed = {speed:g} needs emulated radios (relaysec emulate --speed "
            f"{speed:g}); not an emulator on loopback: {', '.join(real)}. Real Plutos need 1; "
            "set schedule.emulated = true for emulators on another host")


def station(cfg: Config, name: str) -> dict[str, Any]:
    """The station entry called *name*."""
    for st in cfg["stations"]:
        if st["name"] == name:
            return st
    raise ConfigError(f"no station named {name!r}")


def stations_by_role(cfg: Config, role: str) -> list[dict[str, Any]]:
    """Station entries with *role*, in file order."""
    return [s for s in cfg["stations"] if s["role"] == role]


def link_params(cfg: Config, a: str, b: str) -> dict[str, Any]:
    """Channel parameters of the (symmetric) link a–b: [channel] overridden by a [[links]] entry."""
    params: dict[str, Any] = {"snr_db": float(cfg["channel"]["snr_db"]),
                              "channel": cfg["channel"]["model"]}
    for link in cfg["links"]:
        if {link["a"], link["b"]} == {a, b}:
            params.update({k: v for k, v in link.items() if k in ("snr_db", "channel")})
    return params


def redacted(cfg: Config) -> Config:
    """A copy of *cfg* safe to print: configured PSKs replaced by a marker."""
    out = copy.deepcopy(cfg)
    for st in out["stations"]:
        if "psk_hex" in st:
            st["psk_hex"] = "<hidden>"
    return out


# --------------------------------------------------------------------------- TOML output


def _toml_key(key: str) -> str:
    if key and all(c.isalnum() or c in "-_" for c in key):
        return key
    return _toml_scalar(key)


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{out}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_scalar(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise ConfigError(f"cannot write {type(value).__name__} as TOML")


def to_toml(cfg: Mapping[str, Any]) -> str:
    """Write *cfg* as TOML that :func:`tomllib.loads` reads back to the same dict."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
              and key == "stations"):
            arrays.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_scalar(value)}")

    def emit_table(prefix: str, table: Mapping[str, Any]) -> None:
        lines.append("")
        lines.append(f"[{prefix}]")
        subs = []
        for k, v in table.items():
            if isinstance(v, dict):
                subs.append((k, v))
            else:
                lines.append(f"{_toml_key(k)} = {_toml_scalar(v)}")
        for k, v in subs:
            emit_table(f"{prefix}.{_toml_key(k)}", v)

    for key, table in tables:
        emit_table(_toml_key(key), table)
    for key, items in arrays:
        for item in items:
            lines.append("")
            lines.append(f"[[{_toml_key(key)}]]")
            for k, v in item.items():
                lines.append(f"{_toml_key(k)} = {_toml_scalar(v)}")
    return "\n".join(lines) + "\n"
