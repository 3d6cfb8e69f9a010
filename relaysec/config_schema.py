"""The configuration's schema and its checks: every key with what it accepts, and validation.

This module says what a valid relaysec configuration is: the built-in defaults
(``relaysec/data/default.toml``), the allowed values of every scalar key (:func:`specs`), the
shape of ``[[stations]]`` and ``[[links]]`` entries and the topology rules, checked together by
:func:`validate`. Unknown keys, values of the wrong type and out-of-range values are rejected with
a :class:`ConfigError` naming the key, so a typo in a lab config never silently falls back to a
default and a bad value never surfaces later as a traceback (docs/trial.md, "Configuration").

It is apart from :mod:`relaysec.config`, which reads TOML files and ``--set`` overrides, merges
them and derives runtime parameters from the result, so the rules can be read, tested and used
(``relaysec aaa lab`` validates a config it builds) without the loading machinery. The zone list
(:func:`zone_plan`) lives here because :func:`validate` checks that the guards fit its zones.
:mod:`relaysec.config` imports this module, never the reverse.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
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
AAA_BACKENDS = ("builtin", "radius")

# Keys of station and link entries, with their types (defaults are applied per entry).
_STATION_KEYS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "role": (str,),
    "station_id": (int,),
    "psk_hex": (str,),
    "identity": (str,),
    "eap": (str,),
    "cert": (str,),
    "key": (str,),
    "ca": (str,),
    "server_name": (str,),
    "parent": (str,),
    "serving": (str,),
    "handover_target": (str,),
    "uri": (str,),
}
#: Most stations one ``count`` entry may stand for.
MAX_GROUP = 256
_LINK_KEYS: dict[str, tuple[type, ...]] = {
    "a": (str,),
    "b": (str,),
    "snr_db": (int, float),
    "channel": (str,),
}


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key and why."""


class OptionError(ConfigError):
    """A command-line option cannot be used (an output path that cannot be written, a number out
    of range); the message names the option and why. The CLI exits 2, as for a config error."""


def default_config() -> Config:
    """The built-in defaults (a fresh, mutable copy)."""
    return copy.deepcopy(_defaults())


@functools.lru_cache(maxsize=1)
def _defaults() -> Config:
    text = resources.files("relaysec").joinpath("data/default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


# --------------------------------------------------------------------------- value checks


@dataclass(frozen=True)
class Spec:
    """What one config key accepts. *kind*: ``"bool"``, ``"int"`` (an integer), ``"num"`` (an
    integer or a float, finite) or ``"str"``; numbers lie in ``[lo, hi]`` (``(lo, hi]`` when
    *lo_open*); a string must be one of *choices* (a tuple, or a function giving it)."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None
    unit: str = ""

    def allowed(self) -> tuple[str, ...] | None:
        """The allowed strings (None: any)."""
        return self.choices() if callable(self.choices) else self.choices

    def describe(self) -> str:
        """The accepted values, for messages and docs."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            allowed = self.allowed()
            return "one of " + ", ".join(repr(c) for c in allowed) if allowed else "a string"
        what = "an integer" if self.kind == "int" else "a number"
        unit = f" {self.unit}" if self.unit else ""
        left = "(" if self.lo_open else "["
        show = (lambda x: "…" if x is None else str(int(x))) if self.kind == "int" else _num
        return f"{what} in {left}{show(self.lo)}, {show(self.hi)}]{unit}"

    def check(self, key: str, value: Any) -> None:
        """Raise :class:`ConfigError` naming *key* unless *value* is accepted."""
        bad = ConfigError(f"config key {key!r} must be {self.describe()}, got {_shown(value)}")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise bad
            return
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad
            allowed = self.allowed()
            if allowed is not None and value not in allowed:
                raise bad
            return
        types = (int,) if self.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, types):
            raise bad
        if isinstance(value, float) and not math.isfinite(value):
            raise bad
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            raise bad
        if self.hi is not None and value > self.hi:
            raise bad


def _num(x: float | None) -> str:
    if x is None:
        return "…"
    return f"{x:g}" if abs(x) < 1e6 or x != int(x) else f"{x:.6g}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _phy_names(which: str) -> Callable[[], tuple[str, ...]]:
    """The PHY's profile or MCS names, read from ``phy`` when a value is checked (so the config
    and the modem cannot disagree); ``phy`` is imported only then."""

    def names() -> tuple[str, ...]:
        import phy

        return tuple(phy.profiles()) if which == "profile" else tuple(phy.mcs_table())

    return names


def _pluto_range(name: str) -> tuple[float, float]:
    """A range of hw.pluto (the Pluto backend's own limits, checked there again on open)."""
    import hw.pluto

    return getattr(hw.pluto, name)


def _gain_modes() -> tuple[str, ...]:
    from hw.radio import GAIN_MODES

    return tuple(GAIN_MODES)


# Upper bound of the key lifetimes: they go on the air as u32 seconds after the OTA stretch
# (ota_frame_ms / frame_ms, at most 5000 / 1).
_MAX_LIFETIME_S = 7 * 86400.0


@functools.lru_cache(maxsize=1)
def specs() -> dict[str, Spec]:
    """Every scalar config key (dotted) with what it accepts; ``stations`` and ``links`` entries
    are checked by :func:`validate` itself. A key of ``default.toml`` missing here is a bug
    (tested)."""
    lo_hz = _pluto_range("LO_RANGE")
    bw = _pluto_range("BW_RANGE")
    rx_gain = _pluto_range("RX_GAIN_RANGE")
    tx_gain = _pluto_range("TX_GAIN_RANGE")
    pos = {"lo": 0.0, "lo_open": True}
    return {
        "seed": Spec("int", 0, 2**63 - 1),
        "backend": Spec("str", choices=BACKENDS),
        "phy.profile": Spec("str", choices=_phy_names("profile")),
        "phy.mcs": Spec("str", choices=_phy_names("mcs")),
        "phy.ota_mcs": Spec("str", choices=_phy_names("mcs")),
        "phy.frame_ms": Spec("num", 1.0, 100.0, unit="ms"),
        "phy.tx_dbfs": Spec("num", -60.0, 0.0, unit="dB relative to DAC full scale"),
        "schedule.mode": Spec("str", choices=("sim", "wall")),
        "schedule.guard_us": Spec("num", 0.0, 10_000.0, unit="us"),
        "schedule.dynamic": Spec("bool"),
        "schedule.idle_zone_every": Spec("int", 1, 1000),
        "schedule.max_zone_symbols": Spec("int", 9, 1000),
        "schedule.batch_frames": Spec("int", 1, 100),
        "mac.policy": Spec("str", choices=("rr", "pf")),
        "mac.link_adaptation": Spec("bool"),
        "mac.max_allocs": Spec("int", 1, 64),
        "mac.ul_slots": Spec("int", 1, 16),
        "mac.poll_every": Spec("int", 1, 10_000),
        "mac.contention_every": Spec("int", 1, 10_000),
        "mac.quiet_every": Spec("int", 1, 10_000),
        "mac.quiet_after": Spec("int", 1, 1_000_000, unit="frames"),
        "mac.contention_symbols": Spec("int", 5, 64),
        "mac.contention_slots": Spec("int", 1, 8),
        "mac.handover_slots": Spec("int", 0, 10_000, unit="frames"),
        "schedule.ota_frame_ms": Spec("num", 10.0, 5000.0, unit="ms"),
        "schedule.ota_guard_ms": Spec("num", 0.1, 1000.0, unit="ms"),
        "schedule.ota_max_burst_bytes": Spec("int", 32, 65535, unit="bytes"),
        "schedule.ota_tx_latency_ms": Spec("num", 0.0, 1000.0, unit="ms"),
        "schedule.ota_grant_delay": Spec("int", 1, 16, unit="frames"),
        "schedule.ota_build_ahead_ms": Spec("num", 0.5, 1000.0, unit="ms"),
        "schedule.ota_abs_build_ahead_ms": Spec("num", 0.5, 1000.0, unit="ms"),
        "schedule.ota_speed": Spec("num", 0.01, 1.0),
        "schedule.emulated": Spec("bool"),
        "schedule.ota_demod_workers": Spec("bool"),
        "security.mode": Spec("str", choices=SECURITY_MODES),
        "security.ak_predistribution": Spec("bool"),
        "security.encrypt_relay_control": Spec("bool"),
        "security.ak_lifetime_s": Spec("num", 1.0, _MAX_LIFETIME_S, unit="s"),
        "security.tek_lifetime_s": Spec("num", 0.05, _MAX_LIFETIME_S, unit="s"),
        "security.rto_s": Spec("num", 0.001, 60.0, unit="s"),
        "security.max_retries": Spec("int", 0, 100),
        "security.entry_attempts": Spec("int", 1, 100),
        "security.psk_seed": Spec("str"),
        "security.insecure_deterministic_keys": Spec("bool"),
        "channel.model": Spec("str", choices=CHANNELS),
        "channel.snr_db": Spec("num", -20.0, 80.0, unit="dB"),
        "channel.cfo_ppm": Spec("num", 0.0, 50.0, unit="ppm"),
        "channel.sfo_follows_cfo": Spec("bool"),
        "channel.sfo_ppm": Spec("num", 0.0, 50.0, unit="ppm"),
        "channel.start_delay_us": Spec("num", 0.0, 10_000.0, unit="us"),
        "aaa.backend": Spec("str", choices=AAA_BACKENDS),
        "aaa.server": Spec("str"),
        "aaa.secret": Spec("str"),
        "aaa.timeout_s": Spec("num", 0.01, 60.0, unit="s"),
        "aaa.retries": Spec("int", 0, 20),
        "aaa.nas_identifier": Spec("str"),
        "aaa.realm": Spec("str"),
        "traffic.mode": Spec("str", choices=("count", "saturate")),
        "traffic.saturate_s": Spec("num", hi=3600.0, unit="s", lo=0.0, lo_open=True),
        "traffic.window": Spec("int", 1, 100_000),
        "traffic.packets_per_direction": Spec("int", 1, 100_000),
        "traffic.payload_bytes": Spec("int", 24, 8192, unit="bytes"),
        "traffic.per_frame": Spec("int", 1, 1000),
        "traffic.ota_scale": Spec("num", 1.0, 100.0),
        "traffic.min_delivery": Spec("num", 0.0, 1.0),
        "traffic.drain_frames": Spec("int", 1, 100_000),
        "traffic.send_buffer": Spec("int", 512, 1 << 24),
        "arq.enabled": Spec("bool"),
        "arq.per_hop": Spec("bool"),
        "arq.window": Spec("int", 1, 512, unit="blocks"),
        "arq.ack_delay_s": Spec("num", 0.0, 60.0, unit="s"),
        "arq.rto_initial_s": Spec("num", 0.001, 60.0, unit="s"),
        "arq.rto_min_s": Spec("num", 0.001, 60.0, unit="s"),
        "arq.rto_max_s": Spec("num", 0.001, 600.0, unit="s"),
        "arq.lifetime_s": Spec("num", 0.01, 86400.0, unit="s"),
        "arq.purge_s": Spec("num", 0.01, 86400.0, unit="s"),
        "timeouts.entry_s": Spec("num", hi=3600.0, unit="s", **pos),
        "timeouts.traffic_s": Spec("num", hi=3600.0, unit="s", **pos),
        "timeouts.tek_refresh_s": Spec("num", hi=3600.0, unit="s", **pos),
        "timeouts.handover_s": Spec("num", hi=3600.0, unit="s", **pos),
        "report.progress": Spec("bool"),
        "pluto.lo_hz": Spec("num", *lo_hz, unit="Hz"),
        "pluto.rf_bandwidth_hz": Spec("num", *bw, unit="Hz"),
        "pluto.gain_mode": Spec("str", choices=_gain_modes),
        "pluto.rx_gain_db": Spec("num", *rx_gain, unit="dB"),
        "pluto.tx_gain_db": Spec("num", *tx_gain, unit="dB"),
        "pluto.rx_buffer_size": Spec("int", 64, 1 << 24, unit="samples"),
        "pluto.kernel_buffers": Spec("int", 1, 64),
        "pluto.tx_block_size": Spec("int", 256, 1 << 22, unit="samples"),
        "pluto.tx_kernel_buffers": Spec("int", 1, 64),
        "pluto.rx_worker": Spec("bool"),
        "pluto.stream_nice": Spec("int", -20, 19),
    }


#: Station names: they name links ("A->B"), files (``--record``) and table rows.
_STATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
MAX_STATIONS = 256
#: Station keys that only one role may carry.
_ROLE_KEYS = {"parent": ("ars",), "serving": ("ams",), "handover_target": ("ams",)}


def _check_type(key: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"config key {key!r} must be {names}, got {type(value).__name__}")


def _check_entry(where: str, entry: Any, keys: Mapping[str, tuple[type, ...]]) -> None:
    """One ``[[stations]]`` or ``[[links]]`` entry (*where*, e.g. ``stations[2]``): a table whose
    keys are all in *keys*, each value of the types listed there."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table")
    for key, value in entry.items():
        if key not in keys:
            raise ConfigError(f"unknown config key '{where}.{key}'")
        _check_type(f"{where}.{key}", value, keys[key])


#: Top-level arrays of tables absent from the defaults (none unless configured).
OPTIONAL_ARRAYS = ("faults",)


def _check_tables(cfg: Config, ref: Config, where: str) -> None:
    """Every table of the defaults is still a table (an override cannot replace one by a
    scalar) and every key of it is present."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"config key {where!r} must be a table")
    for key, ref_value in ref.items():
        path = f"{where}.{key}" if where else key
        if key not in cfg:
            raise ConfigError(f"config key {path!r} is missing")
        if isinstance(ref_value, dict):
            _check_tables(cfg[key], ref_value, path)
    for key in cfg:
        if key not in ref and not (where == "" and key in OPTIONAL_ARRAYS):
            raise ConfigError(f"unknown config key {(f'{where}.{key}' if where else key)!r}")


def _get(cfg: Config, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def check_uri(key: str, uri: Any) -> None:
    """A station URI: empty (none configured) or one the Pluto backend accepts (``ip:HOST``,
    ``usb:BUS.DEV.IF``, ``local:``), checked with ``hw.pluto``'s own rules."""
    _check_type(key, uri, (str,))
    if uri == "":
        return
    if len(uri) > 256 or not uri.isascii() or not uri.isprintable() or any(
            c.isspace() for c in uri):
        raise ConfigError(f"{key} must be a printable ASCII URI without spaces, got "
                          f"{_shown(uri)}")
    from hw.errors import RadioConfigError
    from hw.pluto import PlutoConfig

    try:
        PlutoConfig(uri=uri)
    except RadioConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def validate(cfg: Config) -> None:
    """Check types, ranges, enumerations and the topology; raise :class:`ConfigError` naming the
    key on the first fault."""
    _check_tables(cfg, _defaults(), "")
    for key, spec in specs().items():
        spec.check(key, _get(cfg, key))
    sec = cfg["security"]
    try:
        seed = sec["psk_seed"].encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("config key 'security.psk_seed' must be UTF-8 text") from None
    if not 1 <= len(seed) <= 64:
        raise ConfigError("config key 'security.psk_seed' must be 1 to 64 bytes of UTF-8 "
                          "(the BLAKE2b key of the demo PSKs)")
    if sec["tek_lifetime_s"] > sec["ak_lifetime_s"]:
        raise ConfigError("config key 'security.tek_lifetime_s' must not exceed "
                          "security.ak_lifetime_s (a TEK never outlives its AK)")
    if cfg["traffic"]["payload_bytes"] < 24:
        raise ConfigError("traffic.payload_bytes must be at least 24 (header + digest)")
    arq = cfg["arq"]
    if not arq["rto_min_s"] <= arq["rto_initial_s"] <= arq["rto_max_s"]:
        raise ConfigError("config keys arq.rto_min_s <= arq.rto_initial_s <= arq.rto_max_s "
                          "must hold")
    _validate_stations(cfg)
    _validate_links(cfg)
    from relaysec.faults import FaultConfigError, validate_faults

    try:
        validate_faults(cfg.get("faults", []), cfg["stations"])
    except FaultConfigError as exc:
        raise ConfigError(str(exc)) from None
    _validate_aaa(cfg["aaa"])
    # the guards must leave room for the zones, in simulation and over the air
    n_zones = len(zone_plan(cfg))
    sch = cfg["schedule"]
    if n_zones * sch["guard_us"] * 1e-3 >= cfg["phy"]["frame_ms"]:
        raise ConfigError(f"config key 'schedule.guard_us': {n_zones} zones with "
                          f"{sch['guard_us']:g} us guards do not fit a phy.frame_ms = "
                          f"{cfg['phy']['frame_ms']:g} ms frame")
    if n_zones * sch["ota_guard_ms"] >= sch["ota_frame_ms"]:
        raise ConfigError(f"config key 'schedule.ota_guard_ms': {n_zones} zones with "
                          f"{sch['ota_guard_ms']:g} ms guards do not fit a "
                          f"schedule.ota_frame_ms = {sch['ota_frame_ms']:g} ms frame")


def _check_identity(key: str, value: str) -> None:
    from stack.errors import MalformedError
    from stack.pkm.nai import check_nai

    try:
        check_nai(value)
    except MalformedError as exc:
        raise ConfigError(f"config key {key!r}: {exc}") from None


EAP_METHODS = ("psk", "tls")
_TLS_KEYS = ("cert", "key", "ca", "server_name")


def _check_eap(cfg: Config, i: int, st: Mapping[str, Any]) -> None:
    """``eap`` is "psk" (default) or "tls"; EAP-TLS needs the RADIUS back end and PEM paths."""
    eap = st.get("eap", "psk")
    if eap not in EAP_METHODS:
        raise ConfigError(f"stations[{i}].eap must be one of {EAP_METHODS}, got {_shown(eap)}")
    if st["role"] == "abs" and ("eap" in st or any(k in st for k in _TLS_KEYS)):
        raise ConfigError(f"stations[{i}]: the ABS is the authenticator; eap, cert, key, ca "
                          "and server_name apply to AMSs and ARSs")
    if eap == "psk":
        extra = [k for k in _TLS_KEYS if k in st]
        if extra:
            raise ConfigError(f"stations[{i}].{extra[0]} applies only with eap = \"tls\"")
        return
    missing = [k for k in _TLS_KEYS if k not in st]
    if missing:
        raise ConfigError(f"stations[{i}] with eap = \"tls\" needs {', '.join(missing)} "
                          "(PEM paths; relaysec pki init writes them)")
    if cfg["aaa"]["backend"] != "radius":
        raise ConfigError(f"stations[{i}].eap = \"tls\" needs aaa.backend = \"radius\" (the "
                          "embedded AAA speaks EAP-PSK only)")


def aaa_server(value: str) -> tuple[str, int]:
    """``(host, port)`` of an ``aaa.server`` value ``"host:port"``; ConfigError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"config key 'aaa.server' must be \"host:port\" with a port in "
                          f"1..65535, got {_shown(value)}")
    return host.strip("[]"), int(port)


def _validate_aaa(aaa: Mapping[str, Any]) -> None:
    """The [aaa] table: a server address, a realm, and for RADIUS a shared secret."""
    from stack.errors import MalformedError
    from stack.pkm.nai import check_realm

    try:
        check_realm(aaa["realm"])
    except MalformedError as exc:
        raise ConfigError(f"config key 'aaa.realm': {exc}") from None
    if not 1 <= len(aaa["nas_identifier"].encode()) <= 253:
        raise ConfigError("config key 'aaa.nas_identifier' must be 1 to 253 bytes")
    aaa_server(aaa["server"])
    if aaa["backend"] == "radius" and not aaa["secret"]:
        raise ConfigError("config key 'aaa.secret' must be set with aaa.backend = \"radius\" "
                          "(the RADIUS shared secret of the server's client entry)")
    if len(aaa["secret"].encode()) > 128:
        raise ConfigError("config key 'aaa.secret' must be at most 128 bytes")


def _validate_stations(cfg: Config) -> None:
    stations = cfg["stations"]
    if not isinstance(stations, list) or not stations:
        raise ConfigError("stations must be a non-empty array of tables")
    if len(stations) > MAX_STATIONS:
        raise ConfigError(f"stations: at most {MAX_STATIONS} stations, got {len(stations)}")
    names: dict[str, dict[str, Any]] = {}
    ids: set[int] = set()
    for i, st in enumerate(stations):
        _check_entry(f"stations[{i}]", st, _STATION_KEYS)
        for key in ("name", "role", "station_id"):
            if key not in st:
                raise ConfigError(f"stations[{i}] needs {key!r}")
        if not _STATION_NAME.fullmatch(st["name"]):
            raise ConfigError(f"stations[{i}].name must be 1-32 letters, digits, '_', '.' or "
                              f"'-' (not starting with '_', '.' or '-'), got {_shown(st['name'])}")
        if st["role"] not in ROLES:
            raise ConfigError(f"stations[{i}].role must be one of {ROLES}, got {st['role']!r}")
        for key, roles in _ROLE_KEYS.items():
            if key in st and st["role"] not in roles:
                raise ConfigError(f"stations[{i}].{key} applies only to role "
                                  f"{' or '.join(roles)}, not {st['role']!r}")
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
        if "uri" in st:
            check_uri(f"stations[{i}].uri", st["uri"])
        if "identity" in st:
            _check_identity(f"stations[{i}].identity", st["identity"])
        _check_eap(cfg, i, st)
        names[st["name"]] = st
        ids.add(st["station_id"])
    found = [s for s in stations if s["role"] == "abs"]
    if len(found) != 1:
        raise ConfigError(f"the topology needs exactly one station with role 'abs', "
                          f"found {len(found)}")
    if not any(s["role"] == "ams" for s in stations):
        raise ConfigError("the topology needs at least one station with role 'ams'")
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
        if st["role"] == "ams" and st.get("handover_target") == st["serving"]:
            raise ConfigError(f"station {st['name']!r}: handover_target must differ from "
                              "serving")


def _validate_links(cfg: Config) -> None:
    links = cfg["links"]
    if not isinstance(links, list):
        raise ConfigError("links must be an array of tables")
    names = {s["name"] for s in cfg["stations"]}
    snr = specs()["channel.snr_db"]
    for i, link in enumerate(links):
        _check_entry(f"links[{i}]", link, _LINK_KEYS)
        for key in ("a", "b"):
            if link.get(key) not in names:
                raise ConfigError(f"links[{i}].{key} must name a station")
        if link["a"] == link["b"]:
            raise ConfigError(f"links[{i}]: a and b must be two different stations")
        if "snr_db" in link:
            snr.check(f"links[{i}].snr_db", link["snr_db"])
        if "channel" in link and link["channel"] not in CHANNELS:
            raise ConfigError(f"links[{i}].channel must be one of {CHANNELS}")


def access_owners(cfg: Config) -> list[str]:
    """Stations with a UL-access zone: those some AMS is served by or hands over to."""
    owners = []
    for st in cfg["stations"]:
        if st["role"] == "ams":
            for key in ("serving", "handover_target"):
                if st.get(key) and st[key] not in owners:
                    owners.append(st[key])
    return owners


def zone_plan(cfg: Config) -> list[tuple[str, str, float]]:
    """The zones of the cell's frame (:func:`relaysec.schedule.zone_order`)."""
    from relaysec.schedule import zone_order

    return zone_order([(s["name"], s["role"]) for s in cfg["stations"]], access_owners(cfg))
