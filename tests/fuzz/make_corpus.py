"""Write the seed corpora: ``python -m tests.fuzz.make_corpus [--harness NAME ...]``.

Every seed is made with the project's own encoders (message classes, EAP-PSK peer and server,
``mpdu.seal``, ``encapsulate_relay``, ``BurstModem.modulate``, ``SigMFRecorder``, the shipped TOML
files) or recorded from an honest run of the role cell, so the fuzzer starts from valid inputs
and spends its time on the edges. Deterministic: the same code writes the same files. A harness's
directory ``tests/fuzz/corpus/<harness>/`` is emptied and rewritten; the files are committed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.fuzz import _core
from tests.fuzz._core import Writer

Seeds = Iterator[tuple[str, bytes]]


# -- PKMv3 messages -------------------------------------------------------------------------------


def _example(cls: type, variant: int) -> Any:
    """An instance of message / record class ``cls`` built from its field table alone (so new
    fields and messages get seeds without touching this file); ``variant`` picks values."""
    from stack.pkm import fields as f

    values: dict[str, Any] = {}
    for name, codec in cls.table():
        if isinstance(codec, f.When):
            if not codec.predicate(values):
                values[name] = None
                continue
            codec = codec.inner
        values[name] = _value(codec, variant)
    return cls(**values)


def _value(codec: Any, variant: int) -> Any:
    from stack.pkm import fields as f

    if isinstance(codec, f.UInt):
        if codec.choices:
            keys = sorted(codec.choices)
            return keys[variant % len(keys)]
        return (0, 1, codec.max_value)[variant % 3]
    if isinstance(codec, f.Stid):
        return (0x010, 0x123, 0xFFF)[variant % 3]
    if isinstance(codec, f.FixedBytes):
        return bytes((variant * 37 + i) & 0xFF for i in range(codec.n))
    if isinstance(codec, f.VarBytes):
        n = max(codec.min_len, (4, 12, 40)[variant % 3])
        return bytes((variant + i) & 0xFF for i in range(min(n, codec.max_len)))
    if isinstance(codec, f.ListOf):
        return tuple(_example(codec.record, variant + k) for k in range(variant % 3))
    if isinstance(codec, f.Embedded):
        return _example(codec.record, variant)
    raise TypeError(f"no example for {type(codec).__name__}")


def _messages() -> list[tuple[str, bytes]]:
    """``(class name, encoding)`` of valid examples of every message, three variants each."""
    from stack.errors import SecurityError
    from stack.pkm import messages as m

    out = []
    for code in sorted(m.MESSAGES):
        cls = m.MESSAGES[code]
        for v in range(3):
            try:
                out.append((f"{cls.__name__}-{v}", _example(cls, v).encode()))
            except SecurityError:
                continue
    return out


def seeds_pkm() -> Seeds:
    """Message examples from the field tables, messages seen on the air, per-class bodies."""
    from stack.pkm import messages as m

    classes = [m.MESSAGES[c] for c in sorted(m.MESSAGES)]
    for name, wire in _messages():
        yield f"msg-{name}", b"\x00" + wire
    for name, wire in _traffic()["control"][:24]:
        yield f"air-{name}", b"\x00" + wire
    for k, cls in enumerate(classes):  # mode 1: class index, then the body
        yield f"body-{cls.__name__}", bytes([1, k]) + _example(cls, 1).encode()[1:]
    records = (m.SecurityNegotiationParameters, m.SaTekUpdate, m.SaContext)
    for j, rec in enumerate(records):
        body = _example(rec, 2).encode_body()
        yield f"record-{rec.__name__}", bytes([1, len(classes) + j]) + body


# -- traffic of an honest cell --------------------------------------------------------------------

_traffic_cache: dict[str, list[tuple[str, bytes]]] = {}


def _traffic() -> dict[str, list[tuple[str, bytes]]]:
    """Frames and plain control messages of an honest run (entry, data, handover, TEK refresh,
    re-authentication) in both security modes."""
    if _traffic_cache:
        return _traffic_cache
    from stack.pkm import messages as m
    from stack.roles.memnet import Net
    from tests.fuzz.harnesses import roles as R

    frames: list[tuple[str, bytes]] = []
    control: dict[bytes, str] = {}
    for mode_i, mode in enumerate(R.MODES):
        roles = R._cell(mode, mode_i == 0)
        net = Net(roles)
        roles[R.ARS1].attach(R.ABS, 0.0)
        roles[R.ARS2].attach(R.ABS, 0.0)
        net.settle(5.0)
        roles[R.AMS].attach(R.ARS1, net.now)
        net.settle(5.0)
        for i in range(12):
            roles[R.AMS].send_data(R.ABS, b"up-%d" % i, net.now)
            roles[R.ABS].send_data(R.AMS, b"down-%d" % i, net.now)
            net.settle(0.05)
        roles[R.AMS].handover(R.ARS2, net.now)
        net.settle(3.0)
        roles[R.AMS].reauthenticate(net.now)
        net.settle(3.0)
        for k, (_t, src, dst, frame) in enumerate(net.log):
            frames.append((f"{mode.value}-{k}-{src & 0xFF:02x}-{dst & 0xFF:02x}", frame))
            for one in R._mpdus(frame):
                if one[0] >> 4 == 0 and len(one) > 2:
                    body = one[2:]
                    try:
                        if m.expects_cmac(body):
                            body = body[:-11]
                        msg = m.decode(body)
                    except Exception:
                        continue
                    control.setdefault(body, type(msg).__name__)
    _traffic_cache["frames"] = frames
    _traffic_cache["control"] = [(f"{n}-{i}", b) for i, (b, n) in enumerate(control.items())]
    return _traffic_cache


# -- EAP and EAP-PSK ------------------------------------------------------------------------------


def _eap_conversation(request_identity: bool) -> list[bytes]:
    """Every EAP packet of an honest EAP-PSK conversation, in order."""
    from stack.pkm.eap_psk import EapPskPeer, EapPskServer
    from tests.fuzz.harnesses import eap_psk as H

    server = EapPskServer(H.PEER_ID, H.PSK, server_id=H.SERVER_ID, rng=11,
                          request_identity=request_identity)
    peer = EapPskPeer(H.PEER_ID, H.PSK, rng=12)
    out = []
    req = server.pending
    while req is not None:
        out.append(req)
        reply, _ = peer.handle(req)
        if reply is None:
            break
        out.append(reply)
        req, _ = server.handle(reply)
    return out


def seeds_eap() -> Seeds:
    """The packets of an honest EAP-PSK conversation, Success, Failure, Notification, NAK."""
    from stack.pkm.eap import EapCode, EapPacket, EapType

    for i, pkt in enumerate(_eap_conversation(True)):
        yield f"conversation-{i}", pkt
    yield "success", EapPacket(EapCode.SUCCESS, 7).encode()
    yield "failure", EapPacket(EapCode.FAILURE, 8).encode()
    yield "notification", EapPacket(EapCode.REQUEST, 9, EapType.NOTIFICATION, b"hello").encode()
    yield "nak", EapPacket(EapCode.RESPONSE, 9, EapType.NAK, bytes([47])).encode()


def seeds_eap_psk() -> Seeds:
    """Type-Data of each message; honest, altered and replayed conversations."""
    from stack.pkm.eap import EapPacket

    for i, pkt in enumerate(_eap_conversation(False)):
        p = EapPacket.decode(pkt)
        if p.type == 47:
            yield f"typedata-{i}", b"\x00" + p.data
    honest = [0, 1] * 3 + [2]
    for opts in (0, 2, 4, 6, 1):
        yield f"honest-{opts}", bytes([1, opts, *honest])
    # mutations and replays at each step of an honest run
    for step in range(1, 7):
        w = Writer().u8(1).u8(0).raw(bytes(honest[:step]))
        w.u8(3).u8(step % 4).u8(5 + step).u8(0x40).u8(step & 1)
        w.raw(bytes(honest[step:]))
        yield f"altered-{step}", w.bytes()
        w = Writer().u8(1).u8(2).raw(bytes(honest[:step])).u8(5).u8(0).u8(step & 1)
        yield f"replay-{step}", w.raw(bytes(honest[step:])).bytes()
    yield "arbitrary", Writer().u8(1).u8(0).u8(4).u8(1).blob(b"\x01\x00\x00\x06\x2f\x00").bytes()


# -- MPDUs, bursts, relay, frames, CMAC -----------------------------------------------------------


def seeds_mpdu() -> Seeds:
    """A replay-window walk, altered and misaddressed MPDUs, raw MPDUs."""
    from stack import mpdu

    def op(w: Writer, kind: int, stid: int, up: bool, eks: int = 0, pn: int = 1, fid: int = 2,
           payload: bytes = b"data", extra: bytes = b"") -> Writer:
        w.u8(kind).u16(stid).u8(int(up))
        if kind == 0:
            return w.blob(payload, 400)
        return w.u8(eks).uint(pn, 3).u8(fid).blob(payload, 300).raw(extra)

    w = Writer()
    for pn in (1, 2, 3, 2, 70, 5, 69):  # in order, a replay, a jump, behind the window
        op(w, 1, 0x123, True, pn % 2, pn, 2, b"payload-%d" % pn)
    yield "window", w.bytes()
    w = Writer()
    op(w, 1, 0x010, False, 1, 0x3FFFFE, 14, bytes(200))
    op(w, 2, 0x010, False, 1, 7, 14, b"x" * 30, extra=bytes([5, 0x80]))
    op(w, 3, 0x010, True, 0, 8, 3, b"y" * 10, extra=bytes([0, 1]))
    op(w, 3, 0x010, True, 0, 9, 3, b"y" * 10, extra=bytes([1]))
    op(w, 3, 0x010, True, 0, 10, 3, b"y" * 10, extra=bytes([2, 9]))
    yield "altered", w.bytes()
    w = Writer()
    op(w, 0, 0x001, True, payload=mpdu.encode_plain(0, b"\x06\x01"))
    op(w, 0, 0x001, True, payload=mpdu.seal(bytes(16), stid=1, fid=2, eks=0, pn=1, uplink=True,
                                             payload=b"wrong key"))
    op(w, 0, 0x001, True, payload=b"\x28\x05abc")  # EH set
    yield "raw", w.bytes()


def seeds_burst() -> Seeds:
    """Mixed bursts (two SAs, plain, replays, raw, padding, truncation), duplicate PNs."""
    from stack import mpdu

    def sealed(w: Writer, k: int, eks: int, pn: int, payload: bytes) -> Writer:
        return w.u8(0).u8(k).u8(eks).uint(pn, 3).u8(0).blob(payload, 200)

    w = Writer()
    w.u8(5)  # units in the first burst (1 + 5 % 12 = 6)
    sealed(w, 0, 0, 1, b"first")
    sealed(w, 1, 1, 1, b"second SA")
    w.u8(1).u8(0).blob(b"\x06\x01", 200)  # plain control
    w.u8(1).u8(9).blob(b"no SA", 200)  # plain with an unknown FID
    w.u8(3).u8(0)  # replay of unit 0
    w.u8(2).blob(b"\x00\x05ab", 64)  # raw
    w.u8(2)  # tail: zero padding
    w.u8(3)
    w.u8(0)  # as bytes
    w.u8(2)  # second burst: 3 units
    sealed(w, 0, 0, 2, b"later")
    w.u8(4).u8(1).u8(3).u8(0x10)  # unit 1 with a byte changed
    sealed(w, 0, 0, 1, b"old PN")
    w.u8(1).u8(40)  # truncated
    w.u8(1)  # as an array
    yield "mixed", w.bytes()
    w = Writer().u8(3)
    for pn in (5, 5, 4, 100):
        sealed(w, 0, 1, pn, b"dup-%d" % pn)
    yield "duplicates", w.u8(0).u8(0).bytes()
    raw = mpdu.encode_plain(0, b"\x02\x00\x04\x01\x01\x00\x04") + bytes(6)
    yield "padding", Writer().u8(0).u8(2).blob(raw, 64).u8(0).u8(0).bytes()


def seeds_relay() -> Seeds:
    """Relay payloads made by encapsulate_relay and pack_relay."""
    from stack import mpdu
    from stack.mac import encapsulate_relay, pack_relay

    inner = [mpdu.encode_plain(0, b"\x06\x01" + bytes(11)),
             mpdu.seal(bytes(16), stid=0x11, fid=2, eks=1, pn=3, uplink=False, payload=b"d" * 40),
             mpdu.encode_plain(2, b"")]
    yield "one", encapsulate_relay([(0x011, inner[0])])
    yield "three", encapsulate_relay([(0x011, inner[0]), (0x012, inner[1]), (0xFFF, inner[2])])
    for i, p in enumerate(pack_relay([(0x20 + k, inner[1]) for k in range(60)], 200)[:2]):
        yield f"packed-{i}", p


def seeds_frames() -> Seeds:
    """Frames recorded from an honest run of the cell."""
    frames = _traffic()["frames"]
    step = max(1, len(frames) // 24)
    for name, frame in frames[::step][:24]:
        yield f"air-{name}", frame
    yield "two", frames[0][1] + frames[1][1]
    yield "trailing-byte", frames[0][1] + b"\x00"


def seeds_cmac() -> Seeds:
    """The CMAC_PN replay rule, altered and misaddressed messages, raw bytes."""
    def genuine(w: Writer, kind: int, up: bool, stid: int, fid: int, msg: bytes, pn: int,
                extra: bytes = b"") -> Writer:
        return w.u8(kind).u8(int(up)).u16(stid).u8(fid).blob(msg).uint(pn, 3).raw(extra)

    w = Writer()
    for pn in (1, 2, 2, 10, 5, 11):
        genuine(w, 1, pn % 2 == 0, 0x123, 0, b"\x06\x01", pn)
    yield "replay-rule", w.bytes()
    w = Writer()
    genuine(w, 2, True, 0x040, 0, b"\x07\x01\x00\x05\x01\x00\x00\x02\x58", 3, bytes([4, 0x20]))
    genuine(w, 3, False, 0x040, 0, b"\x08\x01\x01", 4, bytes([0, 7]))
    genuine(w, 3, False, 0x040, 0, b"\x08\x01\x01", 5, bytes([1, 3]))
    genuine(w, 3, True, 0x040, 15, b"\x08\x01\x01", 6, bytes([2]))
    yield "altered", w.bytes()
    w = Writer().u8(0).u8(1).u16(0x123).u8(0).blob(b"\x06\x01" + bytes(11)).uint(0, 3)
    yield "raw", w.bytes()


# -- PHY, emulator, SigMF, config -----------------------------------------------------------------


def seeds_phy() -> Seeds:
    """Genuine bursts at three MCSs, crafted headers, an impaired burst, int8 IQ, complex64."""
    import numpy as np

    from tests.fuzz.harnesses import phy as H

    H.setup()
    modem = H._modem
    assert modem is not None
    for mcs in (0, 3, 7):  # crafted, genuine and clean
        w = Writer().u8(2).u8(mcs).u16(0x0102).u16(0x0304).blob(b"relaysec phy %d" % mcs)
        yield f"genuine-mcs{mcs}", w.u8(1).u8(0).u8(0).bytes()
    w = Writer().u8(2).u8(0).u16(7).u16(9).blob(b"hdr").u8(0)
    yield "header-long", w.raw(bytes([0xA0, 0x00, 0x60, 0, 1, 0, 2])).u8(0).u8(0).u8(0).bytes()
    w = Writer().u8(2).u8(1).u16(7).u16(9).blob(b"hdr").u8(0)
    yield "header-mcs15", w.raw(bytes([0xAF, 0x00, 0x03, 0, 1, 0, 2])).u8(0).u8(0).u8(0).bytes()
    w = Writer().u8(2).u8(2).u16(1).u16(2).blob(b"impaired" * 4).u8(1).u8(9)
    yield "impaired", w.u8(0x1E).u8(3).u8(140).u8(5).u8(6).bytes()
    iq = modem.modulate(b"int8 burst", src=5, dst=6)
    q = np.clip(np.rint(iq.view(np.float32) * 64 * 3), -128, 127).astype(np.int8)
    pad = np.zeros(64, np.int8)
    yield "int8-burst", b"\x00" + np.concatenate([pad, q, pad]).tobytes()
    yield "complex64", b"\x01" + np.array([0.1 + 0.1j, np.nan, 1j], np.complex64).tobytes()


def seeds_zone() -> Seeds:
    """Genuine zone bursts (allocations at three MCSs, grants, broadcast, a beacon), a crafted
    header, crafted A-MAP entries for us with out-of-range fields, a failed MAP CRC, an impaired
    burst, int8 IQ of a zone burst, complex64."""
    import numpy as np

    from phy import Allocation
    from tests.fuzz.harnesses import zone as H

    H.setup()
    modem = H._modem
    assert modem is not None
    a, b, stranger, bcast = range(4)  # indices into H._DSTS

    def zone(w: Writer, allocs: list[tuple[int, bytes, int]], grants: list[tuple[int, int, int,
                                                                                  int]],
             src: int = 0x0042, queue: int = 1000) -> Writer:
        w.u8(2).u8(len(allocs))
        for dst, payload, mcs in allocs:
            w.u8(dst).blob(payload).u8(mcs)
        w.u8(len(grants))
        for dst, start, length, mcs in grants:
            w.u8(dst).u16(start).u16(length).u8(mcs)
        return w.u16(src).uint(queue, 3)

    w = zone(Writer(), [(a, b"zone for a", 0), (b, b"zone for b" * 3, 3),
                        (stranger, b"not ours", 7), (bcast, b"to all", 2)],
             [(a, 3, 9, 1), (stranger, 1, 1, 0)])
    yield "genuine-4-allocations", w.u8(0).u8(0).u8(0).bytes()
    yield "beacon", zone(Writer(), [], [], queue=17).u8(0).u8(0).u8(0).bytes()
    w = zone(Writer(), [], [(b, 0, 65535, 5)])
    yield "grant-only", w.u8(0).u8(0).u8(0).bytes()
    w = zone(Writer(), [(a, b"hdr", 0)], []).u8(1)
    yield "header-crafted", w.raw(bytes([0x51, 0, 1, 0x01, 0x40, 0x09, 0, 0])).u8(0).u8(0).bytes()
    w = zone(Writer(), [(a, b"x" * 40, 0), (b, b"y", 0)], []).u8(4)
    w.raw(bytes([0x70, 0xFF, 0xF0, 0x00, 0x30, 0x01, 0x90])).u8(0)  # DL past the zone, for a
    w.raw(bytes([0x8F, 0, 1, 0, 2, 0, 0])).u8(2)  # UL grant with reserved bits, broadcast
    yield "map-crafted", w.u8(0).u8(0).bytes()
    w = zone(Writer(), [(a, b"bad map", 1)], [(a, 1, 2, 0)]).u8(8)
    yield "map-bad-crc", w.u8(0).u8(0).bytes()
    w = zone(Writer(), [(a, b"impaired" * 4, 2), (b, b"other", 0)], []).u8(0).u8(9)
    yield "impaired", w.u8(0x1E).u8(3).u8(140).u8(5).u8(6).bytes()
    iq = modem.modulate([Allocation(0x0123, b"int8 zone", "QPSK-1/2")], src=5)
    q = np.clip(np.rint(iq.view(np.float32) * 64 * 3), -128, 127).astype(np.int8)
    pad = np.zeros(64, np.int8)
    yield "int8-zone", b"\x00" + np.concatenate([pad, q, pad]).tobytes()
    yield "complex64", b"\x01" + np.array([0.1 + 0.1j, np.nan, 1j], np.complex64).tobytes()


def seeds_iiod() -> Seeds:
    """libiio-like RX and TX sessions, names instead of ids, malformed commands."""
    yield "session-rx", (
        b"PRINT\nTIMEOUT 2500\nVERSION\n"
        b"READ iio:device0 INPUT voltage0 hardwaregain\n"
        b"WRITE iio:device0 INPUT voltage0 gain_control_mode 7\nmanual\x00\n"
        b"WRITE iio:device0 OUTPUT altvoltage0 frequency 11\n2400000000\x00\n"
        b"READ iio:device0 DEBUG loopback\n"
        b"SET iio:device4 BUFFERS_COUNT 4\n"
        b"OPEN iio:device4 1024 00000003\nREADBUF iio:device4 4096\nCLOSE iio:device4\n\nEXIT\n")
    yield "session-tx", (
        b"TIMEOUT 1000\nGETTRIG iio:device3\nSETTRIG iio:device3\n"
        b"OPEN iio:device3 4 00000003 CYCLIC\nWRITEBUF iio:device3 16\n"
        + bytes(range(16)) + b"CLOSE iio:device3\nEXIT\n")
    yield "by-name", (b"READ ad9361-phy OUTPUT voltage0 hardwaregain\n"
                      b"READ cf-ad9361-lpc BUFFER length_align_bytes\n"
                      b"WRITE ad9361-phy DEBUG loopback 2\n1\x00ZPRINT\nHELP\nBOGUS 1 2\n")
    yield "bad", b"OPEN iio:device4 0 ff\nREADBUF iio:device4 3\nWRITE x 99999999\nTIMEOUT -5\n"


def seeds_sigmf() -> Seeds:
    """A recording written by SigMFRecorder, one without data, a ci16_le one."""
    import numpy as np

    from hw import sigmf
    from hw.sigmf import SigMFRecorder

    sigmf._utc_now = lambda: "2026-01-01T00:00:00.000000Z"  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        rec = SigMFRecorder(Path(tmp) / "r", sample_rate=2.8e6, frequency_hz=2.4e9, seed=3,
                            config={"security": {"mode": "distributed", "psk": "x"}},
                            radio="AMS", hw="emulated", description="fuzz seed",
                            bandwidth_hz=2e6)
        rec.write(np.arange(8, dtype=np.float32).view(np.complex64) / 8)
        rec.annotate(0, 4, label="burst", comment="x", crc_ok=True, snr_db=21.5)
        rec.retune(2.41e9)
        rec.write(np.ones(2, np.complex64))
        meta_path = rec.close()
        meta = meta_path.read_bytes()
        data = rec.data_path.read_bytes()
    yield "recorded", Writer().u16(len(meta)).raw(meta).raw(data).bytes()
    yield "empty-data", Writer().u16(len(meta)).raw(meta).bytes()
    other = (b'{"global": {"core:datatype": "ci16_le", "core:version": "1.0.0", '
             b'"core:sample_rate": 1000000}, "captures": [{"core:sample_start": 0}], '
             b'"annotations": []}')
    yield "ci16", Writer().u16(len(other)).raw(other).raw(bytes(range(16))).bytes()


def seeds_config() -> Seeds:
    """The shipped default and example TOML files, a small file, override lines."""
    from importlib import resources

    default = resources.files("relaysec").joinpath("data/default.toml").read_bytes()
    yield "default", b"\x00" + default
    for p in sorted((_core.ROOT / "examples").glob("*.toml")):
        yield f"example-{p.stem}", b"\x00" + p.read_bytes()
    yield "small", b"\x00" + (b'seed = 3\n[phy]\nmcs = "QPSK-1/2"\n[[stations]]\nname = "A"\n'
                              b'role = "abs"\nstation_id = 1\n')
    yield "overrides", b"\x01" + (b"phy.mcs=QPSK-1/2\nsecurity.mode=centralized\n"
                                  b"schedule.ota_speed=0.5\nbackend=\"pluto\"")


# -- roles ----------------------------------------------------------------------------------------


def seeds_roles() -> Seeds:
    """Programs: entry (each access station), data and TEK refresh, handover, re-authentication,
    every fate on the air, replays and injections; both modes."""
    from tests.fuzz.harnesses import roles as R

    op = {name: i for i, name in enumerate(R.OPS)}
    cmd = {name: i for i, name in enumerate(R.COMMANDS)}
    fate = {name: i for i, name in enumerate(R.FATES)}

    def head(mode_i: int, phase: str, erc: bool = False, arq: bool = False) -> Writer:
        return Writer().u8(mode_i | (R.PHASES.index(phase) << 1) | (8 if erc else 0)
                           | (16 if arq else 0))

    def settle(w: Writer, n: int = 32) -> Writer:
        return w.u8(op["settle"]).u8(n)

    def command(w: Writer, name: str, *args: int, payload: bytes | None = None) -> Writer:
        w.u8(op["command"]).u8(cmd[name])
        for a in args:
            w.u8(a)
        return w if payload is None else w.blob(payload)

    for mode_i, mode in enumerate(R.MODES):
        m = mode.value
        # entry from scratch, ARSs then the AMS at ARS-1 (ARS-2, the ABS)
        for via in (0, 1, 2):
            w = head(mode_i, "empty", erc=via == 1)
            command(w, "ars_attach", 0)
            command(w, "ars_attach", 1)
            settle(w, 64)
            command(w, "ams_attach", via)
            settle(w, 64)
            yield f"{m}-entry-via{via}", w.bytes()
        # data both ways, TEK refresh by PN threshold and by lifetime
        w = head(mode_i, "ams_entered")
        for i in range(6):
            command(w, "ams_data", payload=b"up-%d" % i)
            command(w, "abs_data", 0, payload=b"down-%d" % i)
            w.u8(op["step"])
        settle(w)
        w.u8(op["jump"]).u8(0).u8(30)  # many seconds: TEK lifetimes
        settle(w)
        yield f"{m}-data-tek", w.bytes()
        # ARQ on (per hop in distributed mode): data both ways under loss, a handover, more data
        w = head(mode_i, "ak_predistributed", arq=True)
        for i in range(8):
            command(w, "ams_data", payload=b"up-%d" % i)
            command(w, "abs_data", 0, payload=b"down-%d" % i)
            w.u8(op["deliver_next"]).u8(fate["drop" if i % 3 == 0 else "deliver"]).u8(1).u8(3)
            w.u8(0x20)
            w.u8(op["step"])
        command(w, "handover", 0)
        for i in range(4):
            command(w, "ams_data", payload=b"moved-%d" % i)
            command(w, "abs_data", 0, payload=b"back-%d" % i)
        settle(w, 64)
        yield f"{m}-arq-handover", w.bytes()
        # handover with AK pre-distributed, then traffic
        w = head(mode_i, "ak_predistributed")
        command(w, "handover", 0)
        settle(w)
        command(w, "ams_data", payload=b"after handover")
        settle(w)
        yield f"{m}-handover", w.bytes()
        # handover without pre-distribution, and re-authentication
        w = head(mode_i, "ams_entered", erc=True)
        command(w, "handover", 0)
        settle(w)
        command(w, "reauth", 0)
        settle(w)
        command(w, "reauth", 1)
        settle(w)
        yield f"{m}-handover-reauth", w.bytes()
        # hostile air: each fate on the frames of a re-authentication
        w = head(mode_i, "ams_entered")
        command(w, "reauth", 0)
        for f in R.FATES:
            w.u8(op["deliver_next"]).u8(fate[f]).u8(1).u8(3).u8(0x20)
        settle(w)
        yield f"{m}-fates", w.bytes()
        # replays and injections: an old frame to every role, an empty control MPDU, garbage
        w = head(mode_i, "ams_entered")
        command(w, "ams_data", payload=b"x")
        w.u8(op["collect"])
        for dst in range(4):
            w.u8(op["replay"]).u8(0).u8(1).u8(3).u8(dst)
        for fid_i in range(len(R.INJECT_FIDS)):
            w.u8(op["inject"]).u8(3).u8(fid_i % 4).u8(R.INJECTIONS.index("mpdu")).u8(fid_i)
            w.blob(b"")
        w.u8(op["inject"]).u8(0).u8(1).u8(0).blob(b"\x00\x05\xb0\x00")
        w.u8(op["inject"]).u8(2).u8(0).u8(2).u8(5).u8(4).u8(9).u8(0x80)
        settle(w)
        yield f"{m}-inject", w.bytes()


def seeds_radius() -> Seeds:
    """Genuine answers to the harness back end's first request (Challenge with an EAP-PSK first
    message and a State, Accept with MS-MPPE keys, Reject, a long fragmented EAP-Message), the
    same signed with another secret, an Access-Request, and a Vendor-Specific of another vendor.
    """
    from stack.pkm import radius as r
    from stack.pkm.eap import EapCode, EapPacket, EapType
    from tests.fuzz.harnesses import radius as h

    _auth, _session, request = h.new_client()
    ident, ra = request[1], request[4:20]

    def answer(code: int, attrs: tuple, secret: bytes = h.SECRET) -> bytes:
        return r.encode_answer(code, ident, ra, attrs, secret)

    msg1 = EapPacket(EapCode.REQUEST, 5, EapType.PSK, bytes(17) + b"aaa-server").encode()
    challenge = (*r.eap_attributes(msg1), (r.Attr.STATE, b"state-1"))
    yield "challenge", answer(r.RadiusCode.ACCESS_CHALLENGE, challenge)
    keys = bytes(range(64))
    vsa = b"".join(bytes([t, 2 + len(v)]) + v for t, v in (
        (r.MS_MPPE_RECV_KEY, r.mppe_encrypt(keys[:32], h.SECRET, ra, b"\x80\x01")),
        (r.MS_MPPE_SEND_KEY, r.mppe_encrypt(keys[32:], h.SECRET, ra, b"\x80\x02"))))
    success = EapPacket(EapCode.SUCCESS, 6).encode()
    accept = (*r.eap_attributes(success),
              (r.Attr.VENDOR_SPECIFIC, r.MICROSOFT.to_bytes(4, "big") + vsa))
    yield "accept", answer(r.RadiusCode.ACCESS_ACCEPT, accept)
    yield "accept-no-keys", answer(r.RadiusCode.ACCESS_ACCEPT, r.eap_attributes(success))
    failure = EapPacket(EapCode.FAILURE, 6).encode()
    yield "reject", answer(r.RadiusCode.ACCESS_REJECT,
                           (*r.eap_attributes(failure), (r.Attr.REPLY_MESSAGE, b"no")))
    big = EapPacket(EapCode.REQUEST, 7, 13, bytes(range(256)) * 3).encode()
    yield "challenge-fragmented", answer(r.RadiusCode.ACCESS_CHALLENGE, r.eap_attributes(big))
    yield "wrong-secret", answer(r.RadiusCode.ACCESS_CHALLENGE, challenge, b"other-secret")
    yield "request", request
    other_vendor = (r.Attr.VENDOR_SPECIFIC, (9).to_bytes(4, "big") + b"\x01\x05abc")
    yield "other-vendor", answer(r.RadiusCode.ACCESS_REJECT, (other_vendor,))


def seeds_eap_tls() -> Seeds:
    """Type-Data the server sends: ACK, Start, a TLS alert, a first fragment with L and M, a
    last fragment, a handshake record header, and a length beyond the bound."""
    from stack.pkm.eap_tls import FLAG_L, FLAG_M, FLAG_S, encode_tls

    yield "ack", encode_tls(0)
    yield "start", encode_tls(FLAG_S)
    yield "alert", encode_tls(0, bytes([21, 3, 3, 0, 2, 2, 40]))
    hello = bytes([22, 3, 3, 0, 60, 2, 0, 0, 56, 3, 3]) + bytes(range(32)) + bytes(21)
    yield "first-fragment", encode_tls(FLAG_M, hello[:40], total=len(hello))
    yield "last-fragment", encode_tls(0, hello[40:])
    yield "server-hello", encode_tls(0, hello)
    yield "too-long", bytes([FLAG_L, 0x7F, 0, 0, 0]) + b"x"


def seeds_arq() -> Seeds:
    """ARQ PDUs from the encoders, and programs of offers, losses and ticks."""
    from stack.arq import ArqData, ArqDataAck, ArqDiscard, ArqFeedback

    for name, pdu in (("data", ArqData(5, b"sdu").encode()),
                      ("feedback", ArqFeedback(1023, b"\x80\x01").encode()),
                      ("data-ack", ArqDataAck(ArqData(6, b"sdu"),
                                              ArqFeedback(2, b"\x40")).encode()),
                      ("discard", ArqDiscard(7).encode()), ("reserved", b"\x01\xfc\x00x")):
        yield f"codec-{name}", Writer().u8(1).blob(pdu).bytes()
    w = Writer().u8(0)
    for _ in range(12):
        w.u8(0)                       # offer
    # deliver, lose, duplicate+reorder (rotate 1), feedback back (flag 1), tick (+0.2 s), ...
    for op in ((1,), (2,), (1,), (3, 1), (1,), (1,), (4, 1), (5, 20), (1,), (4, 0), (7,),
               (4, 1), (1,), (1,), (5, 30), (1,), (4, 1)):
        for b in op:
            w.u8(b)
    yield "lossy", w.bytes()


GENERATORS: dict[str, Callable[[], Seeds]] = {
    "pkm": seeds_pkm, "eap": seeds_eap, "eap_psk": seeds_eap_psk, "mpdu": seeds_mpdu,
    "burst": seeds_burst, "relay": seeds_relay, "frames": seeds_frames, "cmac": seeds_cmac,
    "phy": seeds_phy, "zone": seeds_zone, "iiod": seeds_iiod, "sigmf": seeds_sigmf,
    "config": seeds_config, "roles": seeds_roles, "radius": seeds_radius,
    "eap_tls": seeds_eap_tls, "arq": seeds_arq,
}


def write(name: str) -> int:
    """Rewrite the seed directory of harness ``name``; returns the number of seeds."""
    spec = _core.HARNESSES[name]
    spec.corpus.mkdir(parents=True, exist_ok=True)
    for p in spec.corpus.iterdir():
        p.unlink()
    n = 0
    for label, data in GENERATORS[name]():
        data = data[: spec.max_len]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)
        (spec.corpus / safe).write_bytes(data)
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    import logging

    logging.getLogger("stack.roles").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.make_corpus")
    ap.add_argument("--harness", action="append", choices=sorted(GENERATORS))
    args = ap.parse_args(argv)
    for name in args.harness or list(GENERATORS):
        print(f"{name}: {write(name)} seeds", file=sys.stderr)
    return 0


assert set(GENERATORS) == set(_core.HARNESSES), "one seed generator per harness"

if __name__ == "__main__":
    sys.exit(main())
