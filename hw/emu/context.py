"""A generic IIO context: devices, channels, attributes and their values, and its XML.

libiio clients learn the device model from the context XML (``PRINT``) and then read and write
attribute *values* one by one; the XML carries no values. This module holds that model, loads it
from an iio-emu style capture (a context XML whose attributes carry ``value=``), stores the values
and writes the XML that libiio 0.24/0.25 validates against its own DTD.

Attributes that name the same sysfs ``filename`` within a device share one stored value, as on the
real board (e.g. ``in_voltage_rf_bandwidth`` is seen through several ``ad9361-phy`` input channels).
Device-specific behaviour (range checks, side effects) lives in a subclass; see
:mod:`hw.emu.ad9361`.
"""

from __future__ import annotations

import errno
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from hw.emu.errors import IioError, enoent

#: libiio 0.24's XML header and DTD, byte for byte as the client library itself writes it
#: (``context.c``); the client parses the served XML with DTD validation against exactly this.
LIBIIO_XML_HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>'
    "<!DOCTYPE context ["
    "<!ELEMENT context (device | context-attribute)*>"
    "<!ELEMENT context-attribute EMPTY>"
    "<!ELEMENT device (channel | attribute | debug-attribute | buffer-attribute)*>"
    "<!ELEMENT channel (scan-element?, attribute*)>"
    "<!ELEMENT attribute EMPTY>"
    "<!ELEMENT scan-element EMPTY>"
    "<!ELEMENT debug-attribute EMPTY>"
    "<!ELEMENT buffer-attribute EMPTY>"
    "<!ATTLIST context name CDATA #REQUIRED version-major CDATA #REQUIRED "
    "version-minor CDATA #REQUIRED version-git CDATA #REQUIRED description CDATA #IMPLIED>"
    "<!ATTLIST context-attribute name CDATA #REQUIRED value CDATA #REQUIRED>"
    "<!ATTLIST device id CDATA #REQUIRED name CDATA #IMPLIED label CDATA #IMPLIED>"
    "<!ATTLIST channel id CDATA #REQUIRED type (input|output) #REQUIRED name CDATA #IMPLIED>"
    "<!ATTLIST scan-element index CDATA #REQUIRED format CDATA #REQUIRED scale CDATA #IMPLIED>"
    "<!ATTLIST attribute name CDATA #REQUIRED filename CDATA #IMPLIED>"
    "<!ATTLIST debug-attribute name CDATA #REQUIRED>"
    "<!ATTLIST buffer-attribute name CDATA #REQUIRED>"
    "]>"
)

#: Version the emulated iiod reports (``version-git`` must be at least 7 characters).
VERSION_MAJOR = 0
VERSION_MINOR = 25
VERSION_GIT = "relaysec"

#: Captured value meaning "this attribute failed to read on the real board".
CAPTURED_ERROR = "ERROR"

KIND_ATTR = "attr"
KIND_DEBUG = "debug"
KIND_BUFFER = "buffer"


@dataclass(frozen=True)
class Attribute:
    """One attribute: its name, optional sysfs filename and the key of its stored value."""

    name: str
    key: tuple[str, ...]
    filename: str | None = None


@dataclass
class Channel:
    """A channel; ``output`` selects the direction (``voltage0`` exists both ways on the phy)."""

    id: str
    output: bool
    name: str | None = None
    scan_index: int | None = None
    format: str | None = None
    scale: str | None = None
    attrs: dict[str, Attribute] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        """``"output"`` or ``"input"``, as in the XML."""
        return "output" if self.output else "input"


@dataclass
class Device:
    """A device with its channels and its device, debug and buffer attributes."""

    id: str
    name: str | None = None
    label: str | None = None
    channels: list[Channel] = field(default_factory=list)
    attrs: dict[str, Attribute] = field(default_factory=dict)
    debug_attrs: dict[str, Attribute] = field(default_factory=dict)
    buffer_attrs: dict[str, Attribute] = field(default_factory=dict)

    def channel(self, chan_id: str, output: bool) -> Channel:
        """The channel ``chan_id`` in the given direction; ``IioError(ENOENT)`` if absent."""
        for ch in self.channels:
            if ch.id == chan_id and ch.output == output:
                return ch
        raise enoent(f"{self.id}: no {'output' if output else 'input'} channel {chan_id!r}")

    def scan_channels(self) -> list[Channel]:
        """Channels in libiio's numbering: scan elements sorted by index first, then the rest.

        Bit ``N`` of a buffer mask is the ``N``-th channel of this list (libiio
        ``reorder_channels``).
        """
        scan = sorted((c for c in self.channels if c.scan_index is not None),
                      key=lambda c: c.scan_index or 0)
        return scan + [c for c in self.channels if c.scan_index is None]

    @property
    def buffer_capable(self) -> bool:
        """True when the device has scan elements (it can stream)."""
        return any(c.scan_index is not None for c in self.channels)


def _key(dev: Device, filename: str | None, *parts: str) -> tuple[str, ...]:
    return (dev.id, "file", filename) if filename else (dev.id, *parts)


class IioContext:
    """An IIO context: devices and the stored attribute values, safe to share between threads.

    ``read_attr``/``write_attr`` are the operations the protocol server calls; subclasses
    override :meth:`check_write` (validation and side effects, raising :class:`IioError`) and
    :meth:`render` (values computed on read).
    """

    def __init__(self, name: str, description: str,
                 context_attrs: list[tuple[str, str]], devices: list[Device],
                 values: dict[tuple[str, ...], str]) -> None:
        self.name = name
        self.description = description
        self.context_attrs = list(context_attrs)
        self.devices = list(devices)
        self.values = dict(values)
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_capture(cls, path: str | Path, **kwargs: object) -> IioContext:
        """Load devices, channels, attributes and initial values from an iio-emu capture."""
        root = ET.parse(path).getroot()
        if root.tag != "context":
            raise IioError(errno.EINVAL, f"{path}: root element is {root.tag!r}, not 'context'")
        ctx_attrs = [(a.get("name", ""), a.get("value", "")) for a in root.findall(
            "context-attribute") if a.get("name") not in ("uri", "ip,ip-addr")]
        devices: list[Device] = []
        values: dict[tuple[str, ...], str] = {}
        for d in root.findall("device"):
            dev = Device(id=d.get("id", ""), name=d.get("name"), label=d.get("label"))
            for c in d.findall("channel"):
                output = c.get("type") == "output"
                ch = Channel(id=c.get("id", ""), output=output, name=c.get("name"))
                se = c.find("scan-element")
                if se is not None:
                    ch.scan_index = int(se.get("index", "0"))
                    ch.format = se.get("format")
                    ch.scale = se.get("scale")
                for a in c.findall("attribute"):
                    fname = a.get("filename")
                    aname = a.get("name", "")
                    key = _key(dev, fname, "chan", ch.direction, ch.id, aname)
                    ch.attrs[aname] = Attribute(aname, key, fname)
                    values.setdefault(key, a.get("value", ""))
                dev.channels.append(ch)
            for tag, table, kind in (("attribute", dev.attrs, KIND_ATTR),
                                     ("debug-attribute", dev.debug_attrs, KIND_DEBUG),
                                     ("buffer-attribute", dev.buffer_attrs, KIND_BUFFER)):
                for a in d.findall(tag):
                    aname = a.get("name", "")
                    key = (dev.id, kind, aname)
                    table[aname] = Attribute(aname, key)
                    values[key] = a.get("value", "")
            devices.append(dev)
        inst = cls(root.get("name", "network"), root.get("description", ""), ctx_attrs,
                   devices, values, **kwargs)  # type: ignore[arg-type]
        return inst

    # ------------------------------------------------------------------ lookup
    def device(self, ident: str) -> Device:
        """A device by id (``iio:device3``, what libiio sends) or by name."""
        for dev in self.devices:
            if dev.id == ident:
                return dev
        for dev in self.devices:
            if dev.name == ident or (dev.label and dev.label == ident):
                return dev
        raise IioError(errno.ENODEV, f"no device {ident!r}")

    def find(self, dev: Device, kind: str, attr: str, chan: Channel | None = None) -> Attribute:
        """The attribute ``attr`` of a device (``kind``) or of a channel; ENOENT if absent."""
        if chan is not None:
            table = chan.attrs
        else:
            table = {KIND_ATTR: dev.attrs, KIND_DEBUG: dev.debug_attrs,
                     KIND_BUFFER: dev.buffer_attrs}[kind]
        try:
            return table[attr]
        except KeyError:
            where = f"{dev.id} {chan.direction} {chan.id}" if chan else f"{dev.id} {kind}"
            raise enoent(f"{where}: no attribute {attr!r}") from None

    # ------------------------------------------------------------------ values
    def get(self, dev_name: str, attr: str, *, chan: str | None = None, output: bool = False,
            kind: str = KIND_ATTR) -> str:
        """Stored value by device *name*/id (for model code and tests; no rendering)."""
        dev = self.device(dev_name)
        ch = dev.channel(chan, output) if chan is not None else None
        return self.values[self.find(dev, kind, attr, ch).key]

    def set(self, dev_name: str, attr: str, value: str, *, chan: str | None = None,
            output: bool = False, kind: str = KIND_ATTR) -> None:
        """Store a value without checks (model code uses this for side effects)."""
        dev = self.device(dev_name)
        ch = dev.channel(chan, output) if chan is not None else None
        self.values[self.find(dev, kind, attr, ch).key] = value

    def read_attr(self, dev: Device, kind: str, attr: str, chan: Channel | None = None) -> str:
        """The value a client reads; ``IioError`` for unknown or unreadable attributes."""
        a = self.find(dev, kind, attr, chan)
        with self.lock:
            value = self.render(dev, kind, a, chan, self.values.get(a.key, ""))
        if value == CAPTURED_ERROR:
            raise IioError(errno.EIO, f"{dev.id}: {attr} cannot be read")
        return value

    def write_attr(self, dev: Device, kind: str, attr: str, value: str,
                   chan: Channel | None = None) -> None:
        """Validate and store a client's write (side effects included), atomically."""
        a = self.find(dev, kind, attr, chan)
        with self.lock:
            stored = self.check_write(dev, kind, a, chan, value)
            if stored is not None:
                self.values[a.key] = stored

    # Hooks for device models -------------------------------------------------
    def check_write(self, dev: Device, kind: str, attr: Attribute, chan: Channel | None,
                    value: str) -> str | None:
        """Validate a write; return the value to store (None: already stored). Default: as is."""
        return value

    def render(self, dev: Device, kind: str, attr: Attribute, chan: Channel | None,
               stored: str) -> str:
        """The value to report on read; default: the stored string."""
        return stored

    # ------------------------------------------------------------------ XML
    def to_xml(self) -> bytes:
        """The context XML as served by ``PRINT``: libiio's DTD, version attributes, no values."""
        out = [LIBIIO_XML_HEADER,
               f"<context name={quoteattr(self.name)} version-major=\"{VERSION_MAJOR}\" "
               f"version-minor=\"{VERSION_MINOR}\" version-git={quoteattr(VERSION_GIT)} "
               f"description={quoteattr(self.description)} >"]
        for name, value in self.context_attrs:
            out.append(f"<context-attribute name={quoteattr(name)} value={quoteattr(value)} />")
        for dev in self.devices:
            head = f"<device id={quoteattr(dev.id)}"
            if dev.name:
                head += f" name={quoteattr(dev.name)}"
            if dev.label:
                head += f" label={quoteattr(dev.label)}"
            out.append(head + " >")
            for ch in dev.channels:
                head = f"<channel id={quoteattr(ch.id)}"
                if ch.name:
                    head += f" name={quoteattr(ch.name)}"
                out.append(head + f" type=\"{ch.direction}\" >")
                if ch.scan_index is not None:
                    se = (f"<scan-element index=\"{ch.scan_index}\" "
                          f"format={quoteattr(ch.format or '')}")
                    if ch.scale:
                        se += f" scale={quoteattr(ch.scale)}"
                    out.append(se + " />")
                for a in ch.attrs.values():
                    el = f"<attribute name={quoteattr(a.name)}"
                    if a.filename:
                        el += f" filename={quoteattr(a.filename)}"
                    out.append(el + " />")
                out.append("</channel>")
            out.extend(f"<attribute name={quoteattr(n)} />" for n in dev.attrs)
            out.extend(f"<debug-attribute name={quoteattr(n)} />" for n in dev.debug_attrs)
            out.extend(f"<buffer-attribute name={quoteattr(n)} />" for n in dev.buffer_attrs)
            out.append("</device>")
        out.append("</context>")
        return "".join(out).encode()
