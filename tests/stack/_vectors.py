"""Loader for the `[section]` / `name = value` vector files under tests/vectors/."""

from __future__ import annotations

from pathlib import Path

VECTOR_DIR = Path(__file__).resolve().parent.parent / "vectors"


def load(name: str) -> dict[str, dict[str, str]]:
    """Sections of a vector file as {section: {name: raw value}}; '#' lines are comments."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for lineno, raw in enumerate((VECTOR_DIR / name).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"{name}:{lineno}: unexpected line {raw!r}")
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    if not sections:
        raise ValueError(f"{name}: no vectors")
    return sections


def h(value: str) -> bytes:
    """Hex field → bytes (empty string → b'')."""
    return bytes.fromhex(value)


def n(value: str) -> int:
    """Integer field (decimal, or 0x-prefixed hex)."""
    return int(value, 0)
