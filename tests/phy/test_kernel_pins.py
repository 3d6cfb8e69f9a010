"""The fused receive and transmit kernels link in kernels of other files, and numba keys a
cache on the caller's file only: each module pins those files' SHA-256 (``DEPS_SHA256``), and a
change to a linked-in file must come with a new pin -- which changes the module, and so its
cache key."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

import pytest

from phy import payload_kernels, presync_kernels, robust_kernels, tx_kernels


@pytest.mark.parametrize("module", [presync_kernels, robust_kernels, payload_kernels, tx_kernels],
                         ids=lambda m: m.__name__)
def test_the_pinned_kernel_files_are_the_ones_linked_in(module: ModuleType) -> None:
    root = Path(module.__file__).parent
    assert module.DEPS_SHA256
    for name, want in module.DEPS_SHA256.items():
        got = hashlib.sha256((root / name).read_bytes()).hexdigest()
        assert got == want, f"update {module.__name__}.DEPS_SHA256[{name!r}] to {got}"
