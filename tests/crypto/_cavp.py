"""Reader for the NIST CAVP AES-CCM response files shipped in the ``cryptography_vectors`` package.

The files (DVPT/VADT/VNT/VPT/VTT, from the CAVS 11.0 CCM test suite of NIST's Cryptographic
Algorithm Validation Program) live in ``cryptography_vectors/ciphers/AES/CCM/``. Parameters are
set by header lines (``Plen = 24``) or bracketed sections (``[Alen = 0, Plen = 0, Nlen = 13,
Tlen = 4]``); ``Key``/``Nonce`` may be set once per section; each ``Count`` starts a case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CcmCase:
    source: str
    count: int
    key: bytes
    nonce: bytes
    aad: bytes
    payload: bytes  # empty when the case fails (no payload given)
    ct: bytes  # ciphertext ‖ tag
    tag_len: int
    passes: bool


def ccm_dir() -> str:
    import cryptography_vectors

    return os.path.join(os.path.dirname(cryptography_vectors.__file__), "ciphers", "AES", "CCM")


def load(name: str) -> list[CcmCase]:
    """All cases of one .rsp file, e.g. ``load("DVPT128.rsp")``."""
    params: dict[str, int] = {}
    cur: dict[str, str] = {}
    sect: dict[str, str] = {}  # Key / Nonce given once for the cases that follow
    cases: list[CcmCase] = []

    def flush() -> None:
        if "Count" not in cur:
            return
        alen, plen = params.get("Alen", 0), params.get("Plen", 0)
        aad = bytes.fromhex(cur.get("Adata", ""))[:alen]
        payload = bytes.fromhex(cur.get("Payload", ""))[:plen]
        cases.append(
            CcmCase(
                source=name,
                count=int(cur["Count"]),
                key=bytes.fromhex(cur.get("Key", sect.get("Key", ""))),
                nonce=bytes.fromhex(cur.get("Nonce", sect.get("Nonce", ""))),
                aad=aad,
                payload=payload,
                ct=bytes.fromhex(cur["CT"]),
                tag_len=params["Tlen"],
                passes=cur.get("Result", "Pass").startswith("Pass"),
            )
        )
        cur.clear()

    with open(os.path.join(ccm_dir(), name), encoding="ascii") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                flush()
                sect.clear()
                for part in line.strip("[]").split(","):
                    k, _, v = part.partition("=")
                    params[k.strip()] = int(v)
                continue
            k, _, v = line.partition("=")
            k, v = k.strip(), v.strip()
            if k in ("Alen", "Plen", "Nlen", "Tlen"):
                params[k] = int(v)
            elif k in ("Key", "Nonce") and "Count" not in cur:
                sect[k] = v
            elif k == "Count":
                flush()
                cur["Count"] = v
            else:
                cur[k] = v
    flush()
    return cases


def load_vector_file(path: str) -> list[tuple[str, bytes, bytes, bytes, bytes, bytes, bytes]]:
    """Rows ``(name, key, nonce, aad, plaintext, ciphertext, tag)`` of a tests/vectors/ccm_*.txt."""
    rows = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, *hexes = line.split()
            rows.append((name, *(bytes.fromhex(h) for h in hexes)))
    return rows
