"""Real AAA servers for tests: started on free local ports from generated configurations in a
temporary directory (nothing under /etc is read or written), stopped after the test.

A missing server program skips its tests with the reason, and fails them when
``RELAYSEC_REQUIRE_AAA=1`` (set by ``.ci/run``, which installs Debian's ``hostapd``,
``eapoltest`` and ``freeradius``), as ``RELAYSEC_REQUIRE_LIBIIO`` does for the Pluto path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from relaysec.aaa_lab import free_udp_port, running  # noqa: F401  (free_udp_port: for the tests)

REQUIRE_AAA_ENV = "RELAYSEC_REQUIRE_AAA"


def need(program: str, package: str) -> str:
    """The path of ``program``; skip the test without it (fail under RELAYSEC_REQUIRE_AAA=1)."""
    path = shutil.which(program) or (f"/usr/sbin/{program}"
                                     if os.access(f"/usr/sbin/{program}", os.X_OK) else None)
    if path is not None:
        return path
    why = f"{program} is not installed (Debian package {package}: apt-get install {package})"
    if os.environ.get(REQUIRE_AAA_ENV, "") not in ("", "0"):
        pytest.fail(f"{why}, but {REQUIRE_AAA_ENV}=1 requires it (./bootstrap --test as root "
                    "installs it)", pytrace=False)
    pytest.skip(why)


@contextmanager
def hostapd(cfg: dict, directory: Path, *, methods: str = "PSK", tls: Any = None,
            fragment_size: int | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """hostapd as the RADIUS server of ``cfg`` (``relaysec.aaa_servers.write_hostapd``)."""
    from relaysec.aaa_servers import write_hostapd
    from relaysec.config_schema import aaa_server

    need("hostapd", "hostapd")
    files = write_hostapd(cfg, directory, methods=methods, tls=tls, fragment_size=fragment_size)
    with running(files.command, aaa_server(cfg["aaa"]["server"])[1], directory) as proc:
        yield proc


@contextmanager
def freeradius(cfg: dict, directory: Path, pki: Any, *,
               tls_max: str = "1.3") -> Iterator[subprocess.Popen[bytes]]:
    """A private FreeRADIUS (EAP-TLS) for ``cfg`` (``relaysec.aaa_servers.write_freeradius``)."""
    from relaysec.aaa_servers import write_freeradius
    from relaysec.config_schema import aaa_server

    need("freeradius", "freeradius")
    files = write_freeradius(cfg, directory, pki, tls_max=tls_max)
    with running(files.command, aaa_server(cfg["aaa"]["server"])[1], directory, timeout=30,
                 ready_line="Ready to process requests") as proc:
        yield proc
