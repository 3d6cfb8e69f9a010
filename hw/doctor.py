"""Environment checks for the Pluto path, behind ``relaysec doctor``.

:func:`diagnose` runs these checks in order and returns one :class:`Finding` per check. A failed
finding carries a one-line fix.

1. The libiio C library: found with ctypes, version from ``iio_library_get_version``.
2. pylibiio: installed, and on the same major line as the C library. pylibiio 1.x refuses the
   libiio 0.2x that Debian and Ubuntu ship.
3. pyadi-iio: installed and importable.
4. Devices: ``iio.scan_contexts()`` (USB and, where libiio supports it, network), the USB bus in
   sysfs (VID 0456, PID b673/b672), and an optional explicit URI. A Pluto that is on the USB bus
   but invisible to libiio points at permissions (udev rules). Without avahi-daemon, libiio 0.2x's
   DNS-SD scan fails with Avahi's NO_DAEMON (-26, printed "Text file busy") and aborts the whole
   scan, USB included: the doctor names that and scans USB alone.
5. The device found (or given): model, firmware and serial from the context attributes, the
   ranges its ``*_available`` attributes report, and a warning for ``usb:B.D.I`` URIs (they change
   when the Pluto is re-plugged, libiio #916).

Every probe is a module-level function, so tests can simulate each failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import importlib.metadata
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

PLUTO_USB_IDS = {("0456", "b673"), ("0456", "b672")}  # ADALM-PLUTO runtime / DFU
FIX_LIBIIO = (
    "sudo apt install libiio0 libiio-utils   (Fedora: dnf install libiio; macOS: brew install "
    "libiio; Windows: ADI's libiio installer)"
)
FIX_PYLIBIIO = "pip install 'pylibiio==0.25'   (the 0.x bindings match the libiio 0.2x C library)"
FIX_PYADI = "pip install pyadi-iio 'pylibiio==0.25'"
FIX_UDEV = (
    "install ADI's udev rules (53-adi-plutosdr-usb.rules from analogdevicesinc/plutosdr-m2k-"
    "drivers-linux), re-plug the Pluto, or use its network URI ip:192.168.2.1"
)
FIX_AVAHI = (
    "start avahi-daemon (sudo systemctl start avahi-daemon) for network discovery, or look on "
    "USB only with `iio_info -S usb`, or pass --uri ip:ADDRESS"
)
FIX_USB_URI = (
    "use the Pluto's network URI (ip:192.168.2.1; give each Pluto its own address in its "
    "config.txt), or name it by serial: serial:<last digits from `iio_info -S usb`>"
)
FIX_LIBIIO1 = (
    "pin the 0.x line: pip install 'pylibiio==0.25' (a bare `pip install pyadi-iio` pulls "
    "pylibiio 1.0, which needs a libiio 1.x C library; Debian/Ubuntu ship 0.2x)"
)
#: Avahi's AVAHI_ERR_NO_DAEMON (-26), which libiio 0.2x passes on as an errno ("Text file busy").
AVAHI_NO_DAEMON = 26
#: Where a running avahi-daemon listens (what libavahi-client connects to).
AVAHI_SOCKET = "/run/avahi-daemon/socket"
FIX_NO_DEVICE = (
    "plug the Pluto into USB (wait ~10 s for it to boot), check `iio_info -s`, or pass "
    "--uri ip:ADDRESS for a networked Pluto"
)


@dataclass(frozen=True)
class Finding:
    """Result of one check: ``status`` is ok / warn / fail / skip; ``fix`` is one line."""

    check: str
    status: str
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        """True when this check makes the Pluto path unusable."""
        return self.status == FAIL

    def as_dict(self) -> dict[str, str]:
        """Plain dict (for ``--json``)."""
        return {"check": self.check, "status": self.status, "detail": self.detail, "fix": self.fix}


# ------------------------------------------------------------------------------------------
# probes (monkeypatched in tests)


def probe_libiio() -> tuple[int, int, str] | None:
    """(major, minor, git tag) of the libiio C library, or None when it is not installed."""
    name = ctypes.util.find_library("iio")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    major, minor = ctypes.c_uint(), ctypes.c_uint()
    tag = ctypes.create_string_buffer(8)
    lib.iio_library_get_version(ctypes.byref(major), ctypes.byref(minor), tag)
    return major.value, minor.value, tag.value.decode("ascii", "replace")


def probe_dist_version(dist: str) -> str | None:
    """Installed version of a Python distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe_import(module: str) -> Any:
    """Import a module (raises whatever the import raises)."""
    return importlib.import_module(module)


def probe_scan(backend: str | None = None) -> dict[str, str]:
    """libiio's context scan: URI -> description. ``backend="usb"`` scans USB only (what
    ``iio_info -S usb`` does), which works without avahi-daemon."""
    iio = importlib.import_module("iio")
    if backend is None:
        return dict(iio.scan_contexts())
    return _scan_backend(iio, backend)


def _scan_backend(iio: Any, backend: str) -> dict[str, str]:
    """One backend's scan through pylibiio 0.2x's ctypes handles (its ``scan_contexts`` takes no
    backend)."""
    ptr = ctypes.POINTER(iio._ContextInfoPtr)()
    ctx = iio._create_scan_context(backend.encode("ascii"), 0)
    try:
        n = iio._get_context_info_list(ctx, ctypes.byref(ptr))
        try:
            return {
                iio._context_info_get_uri(ptr[i]).decode("ascii", "replace"):
                    iio._context_info_get_description(ptr[i]).decode("ascii", "replace")
                for i in range(n)
            }
        finally:
            iio._context_info_list_free(ptr)
    finally:
        iio._destroy_scan_context(ctx)


def probe_avahi(socket_path: str = AVAHI_SOCKET) -> bool:
    """True when avahi-daemon is running (its client socket exists)."""
    return os.path.exists(socket_path)


def probe_usb(root: str = "/sys/bus/usb/devices") -> list[dict[str, Any]]:
    """Plutos on the USB bus per sysfs: dicts with ``path``, ``node`` (``/dev/bus/usb/...``) and
    ``access`` (the node is readable and writable by this user)."""
    found = []
    base = Path(root)
    if not base.is_dir():
        return found
    for dev in sorted(base.iterdir()):
        try:
            vid = (dev / "idVendor").read_text().strip().lower()
            pid = (dev / "idProduct").read_text().strip().lower()
        except OSError:
            continue
        if (vid, pid) not in PLUTO_USB_IDS:
            continue
        node = ""
        try:
            bus = int((dev / "busnum").read_text())
            num = int((dev / "devnum").read_text())
            node = f"/dev/bus/usb/{bus:03d}/{num:03d}"
        except (OSError, ValueError):
            pass
        access = bool(node) and os.access(node, os.R_OK | os.W_OK)
        found.append({"path": str(dev), "node": node, "access": access, "dfu": pid == "b672"})
    return found


@dataclass(frozen=True)
class DeviceInfo:
    """What an opened context says about itself: ``model`` (``hw_model``), ``phy_model``
    (``ad9361-phy,model``: ``ad9363a``, or ``ad9364`` with the extended range), ``firmware``
    (``fw_version``), ``serial``, the phy's ``*_available`` strings by setting (``lo``,
    ``rx_gain``, ``tx_gain``, ``rx_bw``, ``tx_bw``, ``sample_rate``) and the current RX LO."""

    description: str
    model: str = ""
    phy_model: str = ""
    firmware: str = ""
    serial: str = ""
    ranges: dict[str, str] = field(default_factory=dict)
    rx_lo_hz: float | None = None


#: setting -> (channel id, output, attribute) of ``ad9361-phy`` that reports its range.
RANGE_ATTRS = {
    "lo": ("altvoltage0", True, "frequency_available"),
    "rx_gain": ("voltage0", False, "hardwaregain_available"),
    "tx_gain": ("voltage0", True, "hardwaregain_available"),
    "rx_bw": ("voltage0", False, "rf_bandwidth_available"),
    "tx_bw": ("voltage0", True, "rf_bandwidth_available"),
    "sample_rate": ("voltage0", False, "sampling_frequency_available"),
}


def probe_context(uri: str) -> DeviceInfo:
    """Open an IIO context at ``uri`` and read what it says about the device (raises on
    failure to open; attributes that cannot be read are left empty)."""
    iio = importlib.import_module("iio")
    ctx = iio.Context(uri)
    attrs = dict(getattr(ctx, "attrs", {}) or {})
    ranges: dict[str, str] = {}
    rx_lo = None
    phy = ctx.find_device("ad9361-phy")
    if phy is not None:
        for key, (chan, output, name) in RANGE_ATTRS.items():
            with contextlib.suppress(Exception):
                ranges[key] = phy.find_channel(chan, output).attrs[name].value.strip()
        with contextlib.suppress(Exception):
            rx_lo = float(phy.find_channel("altvoltage0", True).attrs["frequency"].value)
    return DeviceInfo(
        description=str(ctx.description),
        model=attrs.get("hw_model", ""),
        phy_model=attrs.get("ad9361-phy,model", ""),
        firmware=attrs.get("fw_version", ""),
        serial=attrs.get("hw_serial", ""),
        ranges=ranges,
        rx_lo_hz=rx_lo,
    )


# ------------------------------------------------------------------------------------------


def _is_pluto(uri: str, description: str) -> bool:
    text = f"{uri} {description}".lower()
    return any(k in text for k in ("pluto", "0456:b673", "ad9363", "ad9361", "ad9364"))


def diagnose(uri: str | None = None, *, scan: bool = True) -> list[Finding]:
    """Check the Pluto software path and look for devices; see the module docstring."""
    out: list[Finding] = []
    try:
        lib = probe_libiio()
    except Exception as exc:  # a broken library is as bad as a missing one
        lib = None
        out.append(
            Finding("libiio", FAIL, f"the libiio C library failed to load: {exc}", FIX_LIBIIO)
        )
    else:
        if lib is None:
            out.append(
                Finding(
                    "libiio",
                    FAIL,
                    "the libiio C library (libiio.so.0) is not installed",
                    FIX_LIBIIO,
                )
            )
        else:
            out.append(Finding("libiio", OK, f"libiio C library {lib[0]}.{lib[1]} ({lib[2]})"))

    py_ver = probe_dist_version("pylibiio")
    if py_ver is None:
        out.append(
            Finding(
                "pylibiio",
                FAIL,
                "pylibiio (Python bindings of libiio) is not installed",
                FIX_PYLIBIIO,
            )
        )
    elif lib is not None and _major(py_ver) != lib[0]:
        out.append(
            Finding(
                "pylibiio",
                FAIL,
                f"pylibiio {py_ver} does not work with the libiio {lib[0]}.{lib[1]} C library "
                f"(major versions differ; pylibiio 1.x refuses a 0.x library on import)",
                FIX_LIBIIO1 if lib[0] == 0 else "pip install 'pylibiio>=1,<2'",
            )
        )
    elif lib is None:
        out.append(Finding("pylibiio", SKIP, f"pylibiio {py_ver} installed; needs the C library"))
    else:
        try:
            probe_import("iio")
        except Exception as exc:
            out.append(
                Finding("pylibiio", FAIL, f"pylibiio {py_ver} fails to import: {exc}", FIX_PYLIBIIO)
            )
        else:
            if lib[0] >= 1:
                out.append(Finding("pylibiio", WARN, f"pylibiio {py_ver} on libiio "
                                   f"{lib[0]}.{lib[1]}: the 1.x bindings cannot set the kernel "
                                   "block count (no set_kernel_buffers_count), so hw.pluto keeps "
                                   "libiio's default and ignores pluto.kernel_buffers; this line "
                                   "is untested (no libiio 1.x C library to test against)",
                                   FIX_LIBIIO1))
            else:
                out.append(Finding("pylibiio", OK, f"pylibiio {py_ver}"))

    adi_ver = probe_dist_version("pyadi-iio")
    if adi_ver is None:
        out.append(Finding("pyadi-iio", FAIL, "pyadi-iio is not installed", FIX_PYADI))
    elif any(f.failed for f in out):
        out.append(Finding("pyadi-iio", SKIP, f"pyadi-iio {adi_ver} installed; needs libiio"))
    else:
        try:
            probe_import("adi")
        except Exception as exc:
            out.append(
                Finding("pyadi-iio", FAIL, f"pyadi-iio {adi_ver} fails to import: {exc}", FIX_PYADI)
            )
        else:
            out.append(Finding("pyadi-iio", OK, f"pyadi-iio {adi_ver}"))

    stack_ok = not any(f.failed for f in out)
    if not stack_ok:
        out.append(Finding("device", SKIP, "device search skipped: fix the software first"))
        return out

    uri_ok = False
    if uri is not None:
        if uri.startswith("usb:"):
            out.append(Finding("uri", WARN, f"{uri} names a USB bus and device number, which "
                               "change when the Pluto is re-plugged or rebooted", FIX_USB_URI))
        try:
            target = _resolve(uri)
            info = probe_context(target)
        except Exception as exc:
            out.append(
                Finding(
                    "device",
                    FAIL,
                    f"nothing answered at {uri} ({exc})",
                    f"check the address and cable; try `iio_info -u {uri}`"
                    if not uri.startswith("serial:") else "check the cable; `iio_info -S usb`",
                )
            )
        else:
            uri_ok = True
            out.extend(device_findings(uri if target == uri else f"{uri} ({target})", info))
    if not scan:
        if uri is None:
            out.append(Finding("device", SKIP, "device scan disabled (--no-scan)"))
        return out

    contexts, scan_error, avahi_missing = _scan()
    if avahi_missing:
        out.append(
            Finding(
                "dns-sd",
                WARN,
                f"libiio's scan failed with '{scan_error}': that is Avahi's NO_DAEMON "
                "(avahi-daemon is not running), and libiio 0.2x then aborts the whole scan, "
                "USB included; scanned USB only instead",
                FIX_AVAHI,
            )
        )
    plutos = {u: d for u, d in contexts.items() if _is_pluto(u, d)}
    try:
        usb = probe_usb()
    except OSError:
        usb = []
    if plutos:
        listing = "; ".join(f"{u} ({d})" for u, d in sorted(plutos.items()))
        out.append(Finding("scan", OK, f"found {len(plutos)} Pluto(s): {listing}"))
        if uri is None:
            first = sorted(plutos)[0]
            try:
                info = probe_context(first)
            except Exception as exc:
                out.append(Finding("device", FAIL, f"{first} was listed but does not open "
                                   f"({exc})", FIX_UDEV))
            else:
                out.extend(device_findings(first, info))
    elif usb:
        dfu = [d for d in usb if d["dfu"]]
        denied = [d for d in usb if d["node"] and not d["access"]]
        if dfu and len(dfu) == len(usb):
            out.append(
                Finding(
                    "scan",
                    FAIL,
                    "a Pluto is on USB in DFU (firmware update) mode",
                    "power-cycle the Pluto; reflash its firmware if it stays in DFU",
                )
            )
        elif denied:
            nodes = ", ".join(d["node"] for d in denied)
            out.append(
                Finding(
                    "scan",
                    FAIL,
                    f"a Pluto is on USB but this user cannot open it ({nodes})",
                    FIX_UDEV,
                )
            )
        else:
            detail = "a Pluto is on USB but libiio does not list it"
            if scan_error and not avahi_missing:
                detail += f" (scan failed: {scan_error})"
            out.append(Finding("scan", FAIL, detail, FIX_UDEV))
    elif uri_ok:
        out.append(Finding("scan", OK, "no Pluto on USB; using the given URI"))
    elif avahi_missing:
        out.append(Finding("scan", FAIL, "no Pluto on USB (network discovery needs avahi-daemon, "
                           "see dns-sd)", FIX_NO_DEVICE.replace("iio_info -s", "iio_info -S usb")))
    else:
        detail = "no Pluto found"
        if scan_error:
            detail += f" (libiio scan failed: {scan_error})"
        out.append(Finding("scan", FAIL, detail, FIX_NO_DEVICE))
    return out


def _resolve(uri: str) -> str:
    """A ``serial:`` URI as the USB address the Pluto has now (others unchanged)."""
    from hw.pluto import resolve_serial_uri

    return resolve_serial_uri(uri, lambda: probe_scan("usb"))


def _scan() -> tuple[dict[str, str], str, bool]:
    """(contexts, scan error text, avahi missing): a full scan, or USB only when the full scan
    failed on Avahi's NO_DAEMON."""
    try:
        return probe_scan(), "", False
    except Exception as exc:
        error = str(exc)
        no_daemon = getattr(exc, "errno", None) == AVAHI_NO_DAEMON or "Text file busy" in error
        if not (no_daemon and not probe_avahi()):
            return {}, error, False
    try:
        return probe_scan("usb"), error, True
    except Exception as exc:
        return {}, f"{error}; USB-only scan: {exc}", True


def _mhz(text: str) -> str:
    return f"{float(text) / 1e6:g}"


def _bounds(available: str) -> tuple[float, float] | None:
    from hw.pluto import available_bounds

    return available_bounds(available)


def firmware_version(text: str) -> tuple[int, int] | None:
    """``v0.38`` (optionally with a suffix) -> (0, 38); None when it does not parse."""
    m = re.match(r"^v?(\d+)\.(\d+)", text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def extended_range_command(firmware: str) -> str:
    """The U-Boot environment commands that select the AD9364 (extended range) on a firmware."""
    ver = firmware_version(firmware)
    if ver is not None and ver <= (0, 31):
        return "fw_setenv attr_name compatible; fw_setenv attr_val ad9364; reboot"
    return "fw_setenv compatible ad9364; reboot"


def device_findings(uri: str, info: DeviceInfo) -> list[Finding]:
    """The ``device``, ``firmware`` and ``ranges`` lines for one opened Pluto."""
    from hw.pluto import AD9363A_BW_CLAMP, rx_gain_range

    out: list[Finding] = []
    what = ", ".join(x for x in (info.model or info.description,
                                 f"serial {info.serial}" if info.serial else "") if x)
    out.append(Finding("device", OK, f"{uri}: {what}"))
    chip = info.phy_model or "unknown"
    if not info.firmware:
        out.append(Finding("firmware", WARN, f"{chip}; the context reports no fw_version",
                           "update the Pluto firmware (plutosdr-fw releases) to v0.32 or later"))
    else:
        ext = "extended range on" if chip == "ad9364" else "extended range off"
        detail = f"{info.firmware}, chip {chip} ({ext})"
        hint = "" if chip == "ad9364" else (
            f"; 70 MHz-6 GHz (not guaranteed): ssh root@pluto, "
            f"{extended_range_command(info.firmware)}")
        out.append(Finding("firmware", OK, detail + hint))
    r = info.ranges
    parts = []
    lo = _bounds(r.get("lo", ""))
    if lo:
        parts.append(f"LO {lo[0] / 1e6:g}-{lo[1] / 1e6:g} MHz")
    gain = _bounds(r.get("rx_gain", ""))
    if gain:
        at = f" at LO {info.rx_lo_hz / 1e6:g} MHz" if info.rx_lo_hz else ""
        parts.append(f"RX gain {gain[0]:g}..{gain[1]:g} dB{at}")
    elif info.rx_lo_hz:
        g = rx_gain_range(info.rx_lo_hz)
        parts.append(f"RX gain {g[0]:g}..{g[1]:g} dB (table for LO {info.rx_lo_hz / 1e6:g} MHz)")
    tx = _bounds(r.get("tx_gain", ""))
    if tx:
        parts.append(f"TX attenuation {tx[0]:g}..{tx[1]:g} dB")
    bw = [_bounds(r.get(k, "")) for k in ("rx_bw", "tx_bw")]
    if bw[0] and bw[1]:
        lo_bw, hi_bw = max(bw[0][0], bw[1][0]), min(bw[0][1], bw[1][1])
        note = ""
        if chip == "ad9363a":
            clamp = AD9363A_BW_CLAMP
            note = (f" reported; an AD9363A clamps to {clamp[0] / 1e6:g}-{clamp[1] / 1e6:g} MHz "
                    "silently")
            hi_bw = min(hi_bw, clamp[1])
        parts.append(f"RF bandwidth {lo_bw / 1e6:g}-{hi_bw / 1e6:g} MHz"
                     + (f" ({_mhz(str(bw[0][1]))} MHz{note})" if note else ""))
    rate = _bounds(r.get("sample_rate", ""))
    if rate:
        parts.append(f"sample rate {rate[0] / 1e6:.3f}-{rate[1] / 1e6:g} MS/s now (pyadi loads a "
                     "FIR for lower rates)")
    if parts:
        out.append(Finding("ranges", OK, "; ".join(parts)))
    else:
        out.append(Finding("ranges", WARN, "the device reports no *_available ranges",
                           "check that ad9361-phy is in the context: `iio_info -u " + uri + "`"))
    return out


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return -1


def pluto_path_ok(findings: list[Finding]) -> bool:
    """True when nothing failed."""
    return not any(f.failed for f in findings)


def format_findings(findings: list[Finding]) -> str:
    """Human-readable report: one line per check, plus an indented fix line where needed."""
    tags = {OK: "[ ok ]", WARN: "[warn]", FAIL: "[FAIL]", SKIP: "[skip]"}
    lines = []
    for f in findings:
        lines.append(f"{tags.get(f.status, '[ ?? ]')} {f.check:<10} {f.detail}")
        if f.fix and f.status in (FAIL, WARN):
            lines.append(f"       {'':<10} fix: {f.fix}")
    if not pluto_path_ok(findings):
        verdict = "Pluto path: NOT ready"
    elif any(f.check in ("device", "scan") and f.status == OK for f in findings):
        verdict = "Pluto path: ready"
    else:
        verdict = "Pluto path: software ready (no device checked)"
    lines.append(verdict)
    return "\n".join(lines)


__all__ = [
    "FAIL",
    "OK",
    "SKIP",
    "WARN",
    "Finding",
    "diagnose",
    "format_findings",
    "pluto_path_ok",
]
