"""CCM parameters of the 802.16m data path, defined once for every CCM module."""

from __future__ import annotations

CCM_KEY_LEN = 16
"""AES-128 key length in bytes (TEKs are 128-bit)."""
CCM_NONCE_LEN = 13
"""802.16m nonce length in bytes (L = 2)."""
CCM_TAG_LEN = 8
"""802.16m ICV length in bytes (M = 8), the default tag length."""
CCM_MAX_PAYLOAD = 0xFFFF
"""Largest payload with L = 2 (the length field of B_0 is two bytes)."""
TAG_LENS = (4, 6, 8, 10, 12, 14, 16)
"""Tag lengths CCM allows (RFC 3610: M even, 4..16)."""
KEY_LENS = (16, 24, 32)
"""AES key lengths the single-message class accepts (the batch engines take AES-128 only)."""
NONCE_LENS = range(7, 14)
"""Nonce lengths CCM allows (15 - L for L = 2..8)."""
