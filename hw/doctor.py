"""Environment checks for the Pluto path, behind ``relaysec doctor``.

:func:`diagnose` runs these checks in order and returns one :class:`Finding` per check. A failed
finding carries a one-line fix.

1. The libiio C library: found with ctypes, version from ``iio_library_get_version``.
2. pylibiio: installed, and on the same major line as the C library. pylibiio 1.x refuses the
   libiio 0.2x that Debian and Ubuntu ship.
3. pyadi-iio: installed and importable.
4. Devices: ``iio.scan_contexts()`` (USB and, where libiio supports it, network), the USB bus in
   sysfs (VID 0456, PID b673/b672), and an optional explicit URI. A Pluto that is on the USB bus
   but invisible to libiio points at permissions (udev rules).

Every probe is a module-level function, so tests can simulate each failure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import importlib.metadata
import os
from dataclasses import dataclass
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


def probe_scan() -> dict[str, str]:
    """libiio's context scan: URI -> description."""
    iio = importlib.import_module("iio")
    return dict(iio.scan_contexts())


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


def probe_context(uri: str) -> str:
    """Open an IIO context at ``uri``; returns its description (raises on failure)."""
    iio = importlib.import_module("iio")
    ctx = iio.Context(uri)
    attrs = getattr(ctx, "attrs", {}) or {}
    model = attrs.get("hw_model") or attrs.get("ad9361-phy,model") or ""
    return f"{ctx.description} {model}".strip()


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
                f"(major versions differ)",
                FIX_PYLIBIIO if lib[0] == 0 else "pip install 'pylibiio>=1'",
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
        try:
            desc = probe_context(uri)
        except Exception as exc:
            out.append(
                Finding(
                    "device",
                    FAIL,
                    f"nothing answered at {uri} ({exc})",
                    f"check the address and cable; try `iio_info -u {uri}`",
                )
            )
        else:
            uri_ok = True
            out.append(Finding("device", OK, f"{uri}: {desc}"))
    if not scan:
        if uri is None:
            out.append(Finding("device", SKIP, "device scan disabled (--no-scan)"))
        return out

    try:
        contexts = probe_scan()
        scan_error = ""
    except Exception as exc:
        contexts = {}
        scan_error = str(exc)
    plutos = {u: d for u, d in contexts.items() if _is_pluto(u, d)}
    try:
        usb = probe_usb()
    except OSError:
        usb = []
    if plutos:
        listing = "; ".join(f"{u} ({d})" for u, d in sorted(plutos.items()))
        out.append(Finding("scan", OK, f"found {len(plutos)} Pluto(s): {listing}"))
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
            if scan_error:
                detail += f" (scan failed: {scan_error})"
            out.append(Finding("scan", FAIL, detail, FIX_UDEV))
    elif uri_ok:
        out.append(Finding("scan", OK, "no Pluto on USB; using the given URI"))
    else:
        detail = "no Pluto found"
        if scan_error:
            detail += f" (libiio scan failed: {scan_error})"
        out.append(Finding("scan", FAIL, detail, FIX_NO_DEVICE))
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
