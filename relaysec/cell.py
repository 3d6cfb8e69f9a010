"""Cell assembly: roles, modems, radios, nodes, frame schedule and network, from the config.

:func:`build_cell` is the one place a cell is put together; the trial builds every station of
the config in one process, ``relaysec node`` builds one station per host (``names=[station]``),
and tests hand over radios of their own (:func:`relaysec.radios.given`).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from relaysec import warmstart
from relaysec.aaa import AaaSetup, make_authenticator, station_identity, tls_peer_factory
from relaysec.config import deterministic_keys, stations_by_role
from relaysec.config_schema import Config, ConfigError, access_owners
from relaysec.node import Addressing, FrameTap, LinkTable, Node, memoize_sizes
from relaysec.radios import RadioFactory, RadioSetupError, air_clock, for_config, recording
from relaysec.report import MscEntry, Trace
from relaysec.schedule import DL, DL_ACCESS, FrameSchedule, ZonePlanner, build_schedule
from relaysec.simnet import SimNetwork
from relaysec.zonemac import ARQ_FEEDBACK_SLACK, MacConfig

if TYPE_CHECKING:
    from hw.radio import Radio
    from relaysec.ota import OtaNetwork

#: Bytes a data packet grows by on its way to the modem: AGMH, PN/EKS, ICV, relay item header,
#: relay MPDU header and ICV (digest §4.2, §6.4), with a margin.
MPDU_HEADROOM = 48
UNITS_KEPT = 4096
"""Zone lengths the demand planner keeps per (zone, MPDU count, head MPDU size)."""


class SetupError(RuntimeError):
    """The cell cannot be built (a layer missing, a radio not reachable); message says which."""


@functools.lru_cache(maxsize=8)
def _zone_modem(profile: str) -> Any:
    import phy

    return memoize_sizes(phy.ZoneModem(profile))


def frame_timing(cfg: Config, *, wall: bool) -> tuple[float, float]:
    """``(frame_s, guard_s)`` of the run: the simulated 16m frame, or the OTA frame (*wall*)."""
    sch = cfg["schedule"]
    if wall:
        return float(sch["ota_frame_ms"]) * 1e-3, float(sch["ota_guard_ms"]) * 1e-3
    return float(cfg["phy"]["frame_ms"]) * 1e-3, float(sch["guard_us"]) * 1e-6


def dynamic(cfg: Config, *, wall: bool) -> bool:
    """Whether zone lengths follow demand frame by frame (simulation only)."""
    return bool(cfg["schedule"]["dynamic"]) and not wall


def data_mcs(cfg: Config, *, wall: bool) -> str:
    """The data MCS's ceiling (link adaptation chooses below it): ``phy.mcs`` in simulation,
    ``phy.ota_mcs`` over the air, where the radios' own SNR decides how high a link goes."""
    return str(cfg["phy"]["ota_mcs" if wall else "mcs"])


def packet_symbols(cfg: Config, mcs: str | None = None) -> int:
    """Symbols of a zone burst carrying one data packet (``traffic.payload_bytes`` plus
    :data:`MPDU_HEADROOM`) at *mcs* (default ``phy.mcs``), MAP of one entry included."""
    zm = _zone_modem(cfg["phy"]["profile"])
    need = int(cfg["traffic"]["payload_bytes"]) + MPDU_HEADROOM
    mcs = mcs or cfg["phy"]["mcs"]
    return zm.overhead_symbols(1) + zm.data_symbols(zm.rus_for(min(need, zm.max_payload), mcs))


def check_fits(cfg: Config, *, wall: bool) -> None:
    """Raise :class:`ConfigError` unless a data packet (``traffic.payload_bytes`` plus
    :data:`MPDU_HEADROOM`) fits one zone burst: in the smallest zone of the static schedule
    (over the air, or ``schedule.dynamic = false``; with ``schedule.ota_max_burst_bytes``), or,
    with zones sized by demand, in a third of the frame; the message says which knobs to turn."""
    zm = _zone_modem(cfg["phy"]["profile"])
    sch = cfg["schedule"]
    frame_s, guard_s = frame_timing(cfg, wall=wall)
    if wall:
        frame_keys = "schedule.ota_frame_ms or the MCS, lower schedule.ota_guard_ms"
    else:
        frame_keys = "phy.frame_ms or the MCS, lower schedule.guard_us"
    try:
        schedule = build_schedule([(s["name"], s["role"]) for s in cfg["stations"]],
                                  sample_rate=zm.sample_rate, frame_s=frame_s, guard_s=guard_s,
                                  access_owners=access_owners(cfg))
    except ValueError as exc:
        raise ConfigError(f"{exc}: raise {frame_keys}") from None
    need = int(cfg["traffic"]["payload_bytes"]) + MPDU_HEADROOM
    sym = zm.grid.symbol_samples
    if need > zm.max_payload:
        raise ConfigError(f"a {cfg['traffic']['payload_bytes']}-byte packet needs about {need} "
                          f"bytes with headers, more than one allocation carries "
                          f"({zm.max_payload}): lower traffic.payload_bytes")
    mcs = data_mcs(cfg, wall=wall)
    symbols = packet_symbols(cfg, mcs)
    if dynamic(cfg, wall=wall):
        room, where = (schedule.frame_len // 3) // sym, "a third of the TDD frame"
    else:
        room = min((z.length - z.guard // 2) // sym for z in schedule.zones)
        where = "the smallest TDD zone"
    if symbols > room:
        raise ConfigError(
            f"{where} holds {room} OFDM symbols, but a {cfg['traffic']['payload_bytes']}-byte "
            f"packet needs a zone burst of {symbols} at {mcs} (preamble, header "
            f"and MAP included): raise {frame_keys} or traffic.payload_bytes")
    if wall and int(sch["ota_max_burst_bytes"]) < need:
        raise ConfigError(
            f"config key 'schedule.ota_max_burst_bytes' ({sch['ota_max_burst_bytes']}) is "
            f"below the {need} bytes a {cfg['traffic']['payload_bytes']}-byte packet needs "
            "with MAC, security and relay headers")


def active_frames(cfg: Config, *, wall: bool) -> int:
    """Frames after an AMS's last data during which its owner keeps polling it every frame:
    ``mac.poll_every`` in simulation; over the air four grant delays more. There a stream
    that pauses and restarts waits for its next periodic poll, its queue report and a grant
    cycle (two grant delays and the radios' leads, ~250 ms at 20 ms frames): the UL probes of
    the handover phase, started after the TEK refresh's traffic drained, reached the ABS only
    that late, and the handover interruption measured it (139-230 ms; 46-85 ms with the AMS
    kept polled: docs/radios.md "Session 20")."""
    every = int(cfg["mac"]["poll_every"])
    return every + (4 * int(cfg["schedule"]["ota_grant_delay"]) if wall else 0)


def mac_config(cfg: Config, *, wall: bool) -> MacConfig:
    """The zone MAC's tuning from ``[mac]`` (grants apply to the next frame over the air)."""
    m = cfg["mac"]
    return MacConfig(policy=m["policy"], link_adaptation=bool(m["link_adaptation"]),
                     max_mcs=data_mcs(cfg, wall=wall), max_allocs=int(m["max_allocs"]),
                     ul_slots=int(m["ul_slots"]), poll_every=int(m["poll_every"]),
                     active_frames=active_frames(cfg, wall=wall),
                     contention_every=int(m["contention_every"]),
                     quiet_every=int(m["quiet_every"]), quiet_after=int(m["quiet_after"]),
                     contention_symbols=int(m["contention_symbols"]),
                     contention_slots=int(m["contention_slots"]),
                     grant_delay=int(cfg["schedule"]["ota_grant_delay"]) if wall else 0,
                     contention_data=wall,
                     handover_slots=int(m["handover_slots"]) if wall else 0,
                     unit_slack=ARQ_FEEDBACK_SLACK if cfg["arq"]["enabled"] else 0)


def station_psk(cfg: Config, st: Mapping[str, Any]) -> bytes:
    """The station's 16-byte EAP-PSK: ``psk_hex`` if configured, else a demo key derived from
    ``security.psk_seed`` and the station id (fine for a lab, not for a deployment)."""
    if "psk_hex" in st:
        return bytes.fromhex(st["psk_hex"])
    seed = cfg["security"]["psk_seed"].encode()
    return hashlib.blake2b(int(st["station_id"]).to_bytes(6, "big"), key=seed[:64],
                           digest_size=16, person=b"relaysec-psk").digest()


def warm_up(modem: Any) -> float:
    """Compile numba kernels once (modem, CCM engine) so phase timings are warm; returns s.

    On a cold cache (a fresh checkout: nothing compiled yet) a second process compiles the
    Viterbi decoder's kernels, the loopback medium's and the security ones while this one
    compiles the rest of the modem's (:mod:`relaysec.warmstart`), so a first run on two cores
    takes about the longer of the two rather than their sum; numba's on-disk cache hands the
    child's work to this process, which waits for the decoder before its first demodulation
    rather than compile it too, and for the child before it loads the medium's and the
    security kernels (or compiles them: no child, one core). A warm cache loads in well under
    a second either way."""
    from phy.zone import Allocation

    t0 = time.perf_counter()
    child = warmstart.start_child()   # started already by `relaysec trial`, or now
    # 600 bytes: more symbols than the preamble's windows hold, so the payload path's kernels
    # (phy.channel_kernels.gather_windows) load here, not in the trial's first data burst
    iq = modem.modulate([Allocation(2, b"\x00" * 600, "QPSK-1/2")], src=1)
    if child is not None:
        warmstart.await_decoder(child)
    modem.demodulate(np.concatenate([np.zeros(200, np.complex64), np.asarray(iq, np.complex64),
                                     np.zeros(200, np.complex64)]), me=(2,))
    if child is not None:
        try:
            child.wait(timeout=300)
        except subprocess.TimeoutExpired:
            child.kill()
    from hw._medium import warm_up as medium_warm_up
    from stack.mac import warm_up as mac_warm_up

    medium_warm_up()  # the loopback medium's kernels (from the child's cache, or compiled here)
    mac_warm_up()  # burst kernels and the CCM engine (loaded from the cache the child wrote)
    return time.perf_counter() - t0


def make_roles(cfg: Config, local: Iterable[Mapping[str, Any]], *, seeded_keys: bool,
               stretch: float, authenticator: Any = None) -> dict[str, Any]:
    """The sans-I/O role of each station in *local* (``stack.roles``).

    *seeded_keys*: draw every key, nonce and protocol random from the config seed (the
    simulator's reproducible trace); otherwise the OS CSPRNG. *stretch*: time constants are given
    for the simulated 5 ms frame and stretch with the OTA frame, so the protocol sees the same
    frame counts. *authenticator*: the ABS's AAA back end (None: the embedded EAP-PSK server;
    ``relaysec.aaa.make_authenticator`` builds the RADIUS one)."""
    from stack.pkm.authenticator import BuiltinAuthenticator
    from stack.roles import (
        AbsConfig,
        AbsRole,
        AmsConfig,
        AmsRole,
        ArsConfig,
        ArsRole,
        Lifetimes,
        SecurityMode,
        Timers,
    )
    from stack.roles.ids import station_bytes

    sec = cfg["security"]
    mode = SecurityMode(sec["mode"])
    timers = Timers(rto=float(sec["rto_s"]) * stretch, max_retries=int(sec["max_retries"]))
    life = Lifetimes(ak=float(sec["ak_lifetime_s"]) * stretch,
                     tek=float(sec["tek_lifetime_s"]) * stretch)
    # ABS<->ARS management (AK Transfer, context release, handover notices) inside the ARS's
    # relay SA, AES-CCM-encrypted (digest §6.3); ABS and ARSs must agree
    relay_ctl = bool(sec["encrypt_relay_control"])
    stations = cfg["stations"]
    abs_st = stations_by_role(cfg, "abs")[0]
    psks = {station_bytes(s["station_id"]): station_psk(cfg, s)
            for s in stations if s["role"] != "abs"}
    relays = frozenset(int(r["station_id"]) for r in stations_by_role(cfg, "ars"))
    seed = int(cfg["seed"])
    roles: dict[str, Any] = {}

    def identity(st: Mapping[str, Any]) -> bytes | None:
        nai = station_identity(cfg, st)
        return None if nai is None else nai.encode()

    identities = {station_bytes(s["station_id"]): ident for s in stations
                  if s["role"] != "abs" and (ident := identity(s)) is not None}

    def eap_peer(st: Mapping[str, Any]) -> Any:
        return tls_peer_factory(st, identity(st) or b"") if st.get("eap") == "tls" else None

    for s in local:
        rseed: int | None = None
        if seeded_keys:
            rseed = int(np.random.default_rng([seed, int(s["station_id"]) & 0xFFFFFFFF])
                        .integers(2**63))
        if s["role"] == "abs":
            roles[s["name"]] = AbsRole(
                AbsConfig(station_id=s["station_id"], mode=mode, timers=timers, lifetimes=life,
                          encrypt_relay_control=relay_ctl, relays=relays),
                authenticator=authenticator if authenticator is not None else
                BuiltinAuthenticator(psks, rng=None if rseed is None else rseed + 1,
                                     identities=identities),
                rng=rseed)
        elif s["role"] == "ars":
            roles[s["name"]] = ArsRole(
                ArsConfig(station_id=s["station_id"], psk=station_psk(cfg, s), mode=mode,
                          timers=timers, lifetimes=life, abs_id=abs_st["station_id"],
                          encrypt_relay_control=relay_ctl, identity=identity(s),
                          eap_peer=eap_peer(s)),
                rng=rseed)
        else:
            roles[s["name"]] = AmsRole(
                AmsConfig(station_id=s["station_id"], psk=station_psk(cfg, s), timers=timers,
                          lifetimes=life, abs_id=abs_st["station_id"], identity=identity(s),
                          eap_peer=eap_peer(s)),
                rng=rseed)
    return roles


@dataclass
class Cell:
    """A built cell: who is who, the local stations' roles and nodes, the schedule and network.

    ``net`` is a :class:`relaysec.node.SimNetwork` (simulated clock) or a
    :class:`relaysec.ota.OtaNetwork` (wall clock); both step frame by frame."""

    cfg: Config
    stations: list[dict[str, Any]]
    by_name: dict[str, dict[str, Any]]
    id_of: dict[str, int]
    addressing: Addressing
    abs_name: str
    roles: dict[str, Any]
    nodes: dict[str, Node]
    schedule: FrameSchedule
    net: SimNetwork | OtaNetwork
    links: LinkTable
    trace: Trace
    msc: list[MscEntry]
    wall: bool
    stretch: float
    seeded_keys: bool
    radios_real: bool
    timing: dict[str, float] = field(default_factory=dict)
    aaa: AaaSetup | None = None     # the ABS's RADIUS back end (None: the embedded AAA)

    @property
    def directory(self) -> Mapping[int, str]:
        """Station id -> name."""
        return self.addressing.names

    def close(self) -> None:
        """Stop the network's threads and close every radio (Pluto buffers destroyed, TX zeroed;
        SigMF recordings finished). Errors are logged: they must not hide a verdict."""
        import logging

        log = logging.getLogger(__name__)
        try:
            self.net.close()
        except Exception as exc:
            log.error("stopping the network failed: %s", exc)
        if self.aaa is not None and self.aaa.link is not None:
            self.aaa.link.close()
        for node in self.nodes.values():
            try:
                node.radio.close()
            except Exception as exc:
                log.error("closing the radio of %s failed: %s", node.name, exc)


def build_cell(
    cfg: Config,
    names: Iterable[str] | None = None,
    radios: RadioFactory | None = None,
    *,
    wall: bool | None = None,
    radios_real: bool | None = None,
    tap: FrameTap | None = None,
    record_dir: str | Path | None = None,
) -> Cell:
    """Build the stations *names* of *cfg* (default: all) with radios from *radios* (default:
    the config's backend), and the network that drives them.

    *wall*: wall-clock timing with OTA frames (default: backend "pluto" or schedule.mode "wall").
    *radios_real*: the run is over radios, so keys come from the OS CSPRNG unless
    ``security.insecure_deterministic_keys`` (default: backend "pluto"). *tap*: simulation-only
    fault injection on the air. *record_dir*: record every radio's RX as SigMF.
    Raises :class:`SetupError` with the reason when the cell cannot be built."""
    if wall is None:
        wall = cfg["backend"] == "pluto" or cfg["schedule"]["mode"] == "wall"
    if radios_real is None:
        radios_real = cfg["backend"] == "pluto"
    stretch = (float(cfg["schedule"]["ota_frame_ms"]) / float(cfg["phy"]["frame_ms"])
               if wall else 1.0)
    try:
        import phy
        import stack.roles  # noqa: F401
    except ImportError as exc:
        raise SetupError(f"a layer is not available yet: {exc}") from exc
    stations = list(cfg["stations"])
    wanted = None if names is None else set(names)
    local = [s for s in stations if wanted is None or s["name"] in wanted]
    if wanted is not None and len(local) != len(wanted):
        unknown = sorted(wanted - {s["name"] for s in local})
        raise SetupError(f"no station named {', '.join(map(repr, unknown))} in the config")
    try:
        check_fits(cfg, wall=wall)   # the CLI checks this too (exit 2)
    except ConfigError as exc:
        raise SetupError(str(exc)) from None
    id_of = {s["name"]: int(s["station_id"]) for s in stations}
    addressing = Addressing({v: k for k, v in id_of.items()},
                            {int(s["station_id"]): i + 1 for i, s in enumerate(stations)})
    abs_st = stations_by_role(cfg, "abs")[0]
    seeded_keys = deterministic_keys(cfg, radios=radios_real)

    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    tx_rms = 10 ** (float(cfg["phy"]["tx_dbfs"]) / 20)
    modems = {s["name"]: memoize_sizes(phy.ZoneModem(cfg["phy"]["profile"], tx_rms=tx_rms))
              for s in local}
    fs = float(next(iter(modems.values())).profile.sample_rate)
    timing["warmup_s"] = warm_up(next(iter(modems.values())))
    timing["setup_modem_s"] = time.perf_counter() - t0
    frame_s, guard_s = frame_timing(cfg, wall=wall)
    try:
        schedule = build_schedule([(s["name"], s["role"]) for s in stations],
                                  sample_rate=fs, frame_s=frame_s, guard_s=guard_s,
                                  access_owners=access_owners(cfg))
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    factory = radios if radios is not None else for_config(cfg, wall=wall)
    try:
        made: dict[str, Radio] = factory(cfg, local, fs)
        recorders = recording(made, cfg, record_dir, fs) if record_dir is not None else {}
    except RadioSetupError as exc:
        raise SetupError(str(exc)) from None

    aaa = None
    if cfg["aaa"]["backend"] != "builtin" and any(s["role"] == "abs" for s in local):
        try:
            aaa = make_authenticator(cfg, {}, rng=None, wall=wall)
        except OSError as exc:
            raise SetupError(str(exc)) from None
    roles = make_roles(cfg, local, seeded_keys=seeded_keys, stretch=stretch,
                       authenticator=None if aaa is None else aaa.authenticator)
    links, trace, msc = LinkTable(), Trace(), []
    infra = [int(s["station_id"]) for s in stations if s["role"] != "ams"]
    mac = mac_config(cfg, wall=wall)
    nodes = {
        s["name"]: Node(
            s["name"], int(s["station_id"]), roles[s["name"]], modems[s["name"]],
            recorders.get(s["name"], made[s["name"]]), addressing=addressing, links=links,
            abs_id=int(abs_st["station_id"]), infrastructure=infra, mac=mac,
            seed=(int(cfg["seed"]) * 1_000_003 + int(s["station_id"])) & 0xFFFFFFFF,
            trace=trace, msc=msc, recorder=recorders.get(s["name"]),
            aaa=aaa.link if aaa is not None and s["role"] == "abs" else None)
        for s in local
    }
    net: SimNetwork | OtaNetwork
    if wall:
        from relaysec.ota import OtaNetwork

        net = OtaNetwork(
            nodes.values(), schedule,
            master=abs_st["name"] if abs_st["name"] in nodes else None,
            abs_addr=addressing.addr_of(int(abs_st["station_id"])),
            max_burst_bytes=int(cfg["schedule"]["ota_max_burst_bytes"]),
            tx_latency_s=float(cfg["schedule"]["ota_tx_latency_ms"]) * 1e-3,
            build_ahead_s=float(cfg["schedule"]["ota_build_ahead_ms"]) * 1e-3,
            abs_build_ahead_s=float(cfg["schedule"]["ota_abs_build_ahead_ms"]) * 1e-3,
            clock=air_clock(cfg), roles={s["name"]: s["role"] for s in local},
            demod_workers=bool(cfg["schedule"]["ota_demod_workers"]))
    else:
        planner = None
        if dynamic(cfg, wall=wall):
            planner = _planner(cfg, schedule, next(iter(modems.values())))
        net = SimNetwork(nodes.values(), schedule, tap=tap, planner=planner)
    return Cell(cfg=cfg, stations=stations, by_name={s["name"]: s for s in stations},
                id_of=id_of, addressing=addressing, abs_name=abs_st["name"], roles=roles,
                nodes=nodes, schedule=schedule, net=net, links=links, trace=trace, msc=msc,
                wall=wall, stretch=stretch, seeded_keys=seeded_keys, radios_real=radios_real,
                timing=timing, aaa=aaa)


def _planner(cfg: Config, schedule: FrameSchedule, zm: Any) -> ZonePlanner:
    """Zone lengths by demand: a zone needs its zone burst (MAP of two entries) for the bytes
    waiting at ``phy.mcs``; at least a contention slot and one symbol."""
    sym = zm.grid.symbol_samples
    lead = schedule.zones[0].guard // 2
    mcs = cfg["phy"]["mcs"]
    contention = int(cfg["mac"]["contention_symbols"])
    per_symbol = max(1, zm.ru_capacity(zm.ru_per_symbol, mcs))

    min_len = (contention + 1) * sym + lead
    shared = {i for i, z in enumerate(schedule.zones) if z.shared}
    # the zones whose MAP also carries UL grants (a slot and a contention slot)
    owners = {z.tx for z in schedule.zones if z.shared}
    granting = {i for i, z in enumerate(schedule.zones)
                if z.tx in owners and z.name in (DL, DL_ACCESS)}
    block = MacConfig.block_bytes
    ru = zm.ru_per_symbol

    def need(i: int, nbytes: int) -> int:
        # a UL-access zone also keeps room for its contention slot
        extra = contention if i in shared else 0
        return (zm.overhead_symbols(2) + -(-nbytes // per_symbol) + extra) * sym + lead

    # room in each block for a small MPDU queued between two large ones (an ARQ feedback of
    # 21 bytes): without it the last MPDU of a zone sized to the byte misses its room
    small = ARQ_FEEDBACK_SLACK if cfg["arq"]["enabled"] else 0

    # units() depends on its arguments only (the modem's sizes and the settings above are
    # fixed): the planner asks the same (zone, count, head) again every frame, so answers to
    # plain ints are kept (bounded: a long run with many MPDU sizes starts afresh)
    known: dict[tuple[int, int, int], int] = {}

    def units(i: int, k: int, head: int) -> int:
        if type(head) is not int or type(k) is not int or type(i) is not int:
            return _units(i, k, head)
        n = known.get((i, k, head))
        if n is None:
            if len(known) >= UNITS_KEPT:
                known.clear()
            n = known[i, k, head] = _units(i, k, head)
        return n

    def _units(i: int, k: int, head: int) -> int:
        # k whole MPDUs of *head* bytes: one allocation block each when two do not share a
        # block (16m's FEC blocks), else as many per block as fit; the MAP grows with them
        head = min(head, zm.max_payload)
        per = max(1, block // head) if 2 * head <= block else 1
        if per == 1:   # a block also carries the small MPDUs queued between (ARQ feedback)
            head = min(block, head + small)
        full, rest = divmod(k, per)
        rus = full * zm.rus_for(per * head, mcs) + (zm.rus_for(rest * head, mcs) if rest else 0)
        data = -(-rus // ru)
        if i in shared:   # one granted slot (MAP of one entry, a gap symbol), contention slot
            return max((zm.overhead_symbols(1) + data + 1 + contention) * sym + lead,
                       min_len)
        entries = min(full + (1 if rest else 0) + (2 if i in granting else 0), zm.max_entries)
        return (zm.overhead_symbols(entries) + data) * sym + lead

    # zones share the air by the mobiles whose traffic they carry: the ABS's DL zone every
    # AMS's downlink (relayed or not), a station's access zones and UL-relay zone its own AMSs'
    served = Counter(s["serving"] for s in cfg["stations"] if s["role"] == "ams")
    weights = [float(max(1, sum(served.values()) if z.name == DL else served[z.tx]))
               for z in schedule.zones]
    return ZonePlanner(schedule, min_len=min_len, need=need, units=units, weights=weights,
                       idle_every=int(cfg["schedule"]["idle_zone_every"]),
                       max_len=int(cfg["schedule"]["max_zone_symbols"]) * sym + lead,
                       batch=int(cfg["schedule"]["batch_frames"]))
