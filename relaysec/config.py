"""Trial and node configuration: loading it (defaults, a TOML file, command-line overrides) and
deriving runtime parameters from it.

The defaults live in ``relaysec/data/default.toml`` (shipped with the package); a user file only
needs the keys it changes. Merging is a deep merge of tables; arrays (``stations``, ``links``) are
replaced whole, because merging station lists element by element would be surprising.
Command-line flags override both through dotted keys (``phy.mcs=QPSK-1/2``).

Every value is checked where the merged config is built: :func:`load_config` calls
:func:`relaysec.config_schema.validate`, and the schema (what each key accepts, the topology
rules, :class:`~relaysec.config_schema.ConfigError`) lives in :mod:`relaysec.config_schema`. The
rest of this module derives what the runtime needs from a valid config (ARQ parameters, traffic
counts, link channels, key randomness) and writes it back out as TOML.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from relaysec.config_schema import (
    MAX_GROUP,
    OPTIONAL_ARRAYS,
    Config,
    ConfigError,
    _shown,
    default_config,
    validate,
)

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


#: Largest config file read (a TOML scenario is a few kB; this bounds ``--config /dev/zero``).
MAX_CONFIG_BYTES = 1 << 20


def arq_per_hop(cfg: Config) -> bool:
    """Whether the hops through an ARS run their own ARQ under the end-to-end one
    (``arq.per_hop``, distributed mode only: in centralized mode the ARS only forwards)."""
    return bool(cfg["arq"]["enabled"] and cfg["arq"]["per_hop"]
                and cfg["security"]["mode"] == "distributed")


def traffic_counts(cfg: Config, *, wall: bool) -> tuple[int, int]:
    """``(per_frame, packets_per_direction)`` of a counted traffic phase: as configured in
    simulation; over the air both multiplied by ``traffic.ota_scale`` (default 4: a 20 ms OTA
    frame has the air of four simulated 5 ms frames, so a phase offers the same traffic per
    second of air and lasts about as many frames; 1 takes the counts as written)."""
    tr = cfg["traffic"]
    k = float(tr.get("ota_scale", 1.0)) if wall else 1.0
    return (min(1000, max(1, round(int(tr["per_frame"]) * k))),
            min(100_000, max(1, round(int(tr["packets_per_direction"]) * k))))


def arq_params(cfg: Config, stretch: float = 1.0) -> Any:
    """The ``stack.arq.ArqParams`` of ``[arq]`` (times stretched like the other protocol
    timers over the air), or None when ARQ is off."""
    from stack.arq import ArqParams

    a = cfg["arq"]
    if not a["enabled"]:
        return None
    return ArqParams(window=int(a["window"]), ack_delay=float(a["ack_delay_s"]) * stretch,
                     rto_initial=float(a["rto_initial_s"]) * stretch,
                     rto_min=float(a["rto_min_s"]) * stretch,
                     rto_max=float(a["rto_max_s"]) * stretch,
                     lifetime=float(a["lifetime_s"]) * stretch,
                     purge=float(a["purge_s"]) * stretch)


def load_toml(path: str | Path) -> Config:
    """Parse a TOML file; every failure (missing, a directory, unreadable, too large, not UTF-8,
    not TOML) is a :class:`ConfigError` naming the file."""
    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigError(f"config file {str(p)!r} is a directory, not a TOML file")
        with p.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {str(p)!r}") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(p)!r} cannot be read: "
                          f"{exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(p)!r} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r} is not UTF-8 text (byte {exc.start}); "
                          "TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(p)!r}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config file {str(p)!r}: TOML nested too deeply") from None


def _merge(base: Config, over: Mapping[str, Any], where: str) -> Config:
    for key, value in over.items():
        path = f"{where}.{key}" if where else key
        if key not in base and not where and key in OPTIONAL_ARRAYS:
            base[key] = copy.deepcopy(value)
            continue
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
    as one (numbers, booleans, quoted strings, arrays, inline tables) and as a bare string
    otherwise."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        doc = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError:
        if "\n" in raw or "\r" in raw:
            raise ConfigError(f"override {key!r}: the value must be one line") from None
        return key, raw.strip()
    except RecursionError:
        raise ConfigError(f"override {key!r}: value nested too deeply") from None
    if set(doc) != {"v"}:
        raise ConfigError(f"override {key!r}: the value must be a single TOML value")
    return key, doc["v"]


def _set_dotted(cfg: Config, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"unknown config key {here!r}")
        if not isinstance(node[part], dict):
            raise ConfigError(f"config key {here!r} has no keys to set ({key!r}); set it whole "
                              f"(--set '{here}=…') or in the config file")
        node = node[part]
    if parts[-1] not in node and not (len(parts) == 1 and key in OPTIONAL_ARRAYS):
        raise ConfigError(f"unknown config key {key!r}")
    if isinstance(node.get(parts[-1]), dict):
        # a whole table (``--set 'phy={mcs="QPSK-1/2"}'``) merges key by key, as a file does
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key {key!r} must be a table")
        _merge(node[parts[-1]], value, key)
        return
    node[parts[-1]] = copy.deepcopy(value)


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[tuple[str, Any]] = (),
) -> Config:
    """Defaults, then the TOML file at *path* (if any), then *overrides* (dotted keys); validated.

    >>> cfg = load_config(overrides=[("phy.mcs", "QPSK-1/2")])
    >>> cfg["phy"]["mcs"]
    'QPSK-1/2'
    """
    return load_config_sources(path, overrides)[0]


def load_config_sources(
    path: str | Path | None = None,
    overrides: Iterable[tuple[str, Any]] = (),
) -> tuple[Config, set[str]]:
    """:func:`load_config`, plus the dotted keys the file or the overrides set (as opposed to
    built-in defaults), e.g. ``{"seed", "phy.mcs"}``: a few checks depend on what the user
    asked for, not only on the value (:func:`check_key_randomness`)."""
    cfg = default_config()
    given: set[str] = set()
    if path is not None:
        data = load_toml(path)
        _merge(cfg, data, "")
        given |= set(_dotted_keys(data, ""))
    for key, value in overrides:
        _set_dotted(cfg, key, value)
        given |= set(_dotted_keys(value, key)) if isinstance(value, Mapping) else {key}
    if "phy.mcs" in given and "phy.ota_mcs" not in given:
        # a scenario or an override that names the data MCS means it over the air too (the
        # lab example's robust QPSK-3/4); phy.ota_mcs alone only replaces the default ceiling
        cfg["phy"]["ota_mcs"] = cfg["phy"]["mcs"]
    expand_groups(cfg)
    validate(cfg)
    return cfg, given


def expand_groups(cfg: Config) -> None:
    """Replace every ``[[stations]]`` entry with ``count = N`` (AMSs only) by N stations named
    ``<name>-1`` .. ``<name>-N`` with consecutive station ids from ``station_id``, and every
    ``[[links]]`` entry naming the group by one per member. Raises :class:`ConfigError`."""
    stations = cfg.get("stations")
    if not isinstance(stations, list):
        return
    out: list[Any] = []
    groups: dict[str, list[str]] = {}
    for i, st in enumerate(stations):
        if not isinstance(st, dict) or "count" not in st:
            out.append(st)
            continue
        n = st["count"]
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_GROUP:
            raise ConfigError(f"stations[{i}].count must be an integer in 1..{MAX_GROUP}, "
                              f"got {_shown(n)}")
        if st.get("role") != "ams":
            raise ConfigError(f"stations[{i}].count applies only to role 'ams' (a group of "
                              "mobiles), not {!r}".format(st.get("role")))
        for key in ("psk_hex", "uri", "identity", "cert", "key"):
            if key in st:
                raise ConfigError(f"stations[{i}].{key} cannot be shared by a group "
                                  f"(count = {n}): list those stations one by one")
        if not isinstance(st.get("name"), str) or not isinstance(st.get("station_id"), int):
            raise ConfigError(f"stations[{i}] needs a name and a station_id (the group's "
                              "first)")
        members = []
        for k in range(n):
            member = {key: v for key, v in st.items() if key != "count"}
            member["name"] = f"{st['name']}-{k + 1}"
            member["station_id"] = st["station_id"] + k
            members.append(member["name"])
            out.append(member)
        groups[st["name"]] = members
    if not groups:
        return
    cfg["stations"] = out
    links = cfg.get("links")
    if isinstance(links, list):
        expanded: list[Any] = []
        for link in links:
            if not isinstance(link, dict):
                expanded.append(link)
                continue
            a_side = groups.get(link.get("a"), [link.get("a")])
            b_side = groups.get(link.get("b"), [link.get("b")])
            expanded += [{**link, "a": a, "b": b} for a in a_side for b in b_side]
        cfg["links"] = expanded


def _dotted_keys(data: Any, where: str) -> Iterable[str]:
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _dotted_keys(value, f"{where}.{key}" if where else str(key))
    else:
        yield where


def deterministic_keys(cfg: Config, *, radios: bool) -> bool:
    """Whether the roles and the authenticator draw keys, nonces and protocol randoms from the
    seed: always in the loopback simulator (same seed, same trace), over radios (``backend =
    "pluto"``, ``relaysec node``) only with ``security.insecure_deterministic_keys``; otherwise
    they come from the OS CSPRNG (``os.urandom``)."""
    return not radios or bool(cfg["security"]["insecure_deterministic_keys"])


def check_key_randomness(cfg: Config, *, radios: bool, seed_given: bool) -> None:
    """Refuse a seeded run over radios unless deterministic keys were asked for explicitly.

    Over radios the seed would only pick payloads (keys are fresh), so a seed the user set
    (``--seed``, ``seed`` in the file, ``--set seed=…``) most likely expects reproducible keys,
    which over the air means keys anyone with the config can recompute."""
    if radios and seed_given and not cfg["security"]["insecure_deterministic_keys"]:
        raise ConfigError(
            f"config key 'seed' ({cfg['seed']}) is set for a run over radios, where every key, "
            "nonce and protocol random comes from the OS CSPRNG; a seed would make them "
            "reproducible by anyone holding the config. Leave the seed out, or, for a "
            "debugging run only, pass --insecure-deterministic-keys (security."
            "insecure_deterministic_keys = true): its reports say 'insecure: deterministic "
            "keys'")


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


#: The TX stream of one process that drives several radios (``relaysec trial --backend pluto``
#: opens one per station), for every key the user left at its default: a host busy with four
#: radios' demodulation is late by a millisecond now and then, and a 4 ms push spends ~3 ms of
#: its 4 crossing USB at 2.8 MS/s, so one late push empties the DAC queue and underflows cascade
#: (docs/radios.md, "Session 13"). 6 ms pushes leave 2.3 ms of margin and a third fewer
#: transfers; their longer TX lead needs zone bursts built earlier. UL grants go 6 frames ahead:
#: one process demodulating four radios decodes a grant 10-130 ms after its burst, and at 4
#: frames 54-73 % of an AMS's grants came after their slot was due (docs/radios.md, "Session
#: 14": 66-122 kb/s per direction instead of 28-70, handover interruption 0.24-0.47 s instead
#: of 0.5-1.0 s).
#: Zone bursts are built 14 ms ahead of the horizon, the ABS's 20: when that one loop falls
#: behind, a burst built too late is skipped -- the ABS's is a beacon lost at every other node
#: (ABS zones skipped 8-20 a run and 1.6-2.4 % of the beacons lost at 10 ms, against 0-1 and
#: 0.0 % at 20 ms), an ARS's is an AMS's downlink or its uplink relay lost for a frame (29-46
#: zones skipped a run at 10 ms, 3-11 at 14 ms, with the handover interruption 128-284 ms
#: instead of 186-943 ms and the goodput within the spread: docs/radios.md, "Session 16").
#: ``relaysec node`` (one radio per process, a host each) keeps the defaults: a shorter lead
#: answers requests, grants and handovers sooner. ``examples/shared-host.toml`` holds the same
#: values for nodes that share a host.
SHARED_HOST_STREAM: dict[str, int | float] = {
    "pluto.tx_block_size": 16800,
    "pluto.tx_kernel_buffers": 3,
    "schedule.ota_build_ahead_ms": 14.0,
    "schedule.ota_abs_build_ahead_ms": 20.0,
    "schedule.ota_grant_delay": 6,
}


def shared_host_stream(cfg: Config, given: set[str]) -> dict[str, int | float]:
    """Set :data:`SHARED_HOST_STREAM` in *cfg* for the keys not in *given* (those the file or
    the overrides set, :func:`load_config_sources`) when *cfg* runs over radios (``backend =
    "pluto"``) from this one process at full air speed; returns what it set (empty: nothing
    changed). An emulated air slowed down (``schedule.ota_speed`` < 1) leaves the host the
    slack the one-radio stream needs, and that stream answers sooner: at half speed on 4
    emulated Plutos it carried 232-256 kb/s per direction with a 48 ms handover interruption,
    the shared-host one 219-232 kb/s and 233 ms (docs/radios.md, "Session 14")."""
    if cfg["backend"] != "pluto" or len(cfg["stations"]) < 2 \
            or float(cfg["schedule"]["ota_speed"]) < 1.0:
        return {}
    out: dict[str, int | float] = {}
    for key, value in SHARED_HOST_STREAM.items():
        if key not in given:
            _set_dotted(cfg, key, value)
            out[key] = value
    if out:
        validate(cfg)
    return out


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
    """A copy of *cfg* safe to print: configured PSKs and the RADIUS secret replaced by a
    marker."""
    out = copy.deepcopy(cfg)
    if out.get("aaa", {}).get("secret"):
        out["aaa"]["secret"] = "<hidden>"
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
        return '"' + "".join(_toml_char(ch) for ch in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_scalar(v)}" for k, v in value.items())
        return "{" + inner + "}"
    raise ConfigError(f"cannot write {type(value).__name__} as TOML")


def _toml_char(ch: str) -> str:
    """One character of a TOML basic string: quotes, backslashes and control characters
    escaped (TOML forbids them raw)."""
    if ch in ('"', "\\"):
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\u{ord(ch):04X}"
    return ch


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
