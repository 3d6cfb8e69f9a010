"""Cryptographic primitives of the security sublayer: AES-CMAC, Dot16KDF, AES key wrap, AES-CCM."""

from stack.crypto.primitives import (
    aes_cmac,
    aes_ecb_encrypt,
    ccm_decrypt,
    ccm_encrypt,
    dot16kdf,
    unwrap_key,
    wrap_key,
)

__all__ = [
    "aes_cmac",
    "aes_ecb_encrypt",
    "ccm_decrypt",
    "ccm_encrypt",
    "dot16kdf",
    "unwrap_key",
    "wrap_key",
]
