"""Cryptographic primitives of the security sublayer: AES-CMAC, Dot16KDF, AES key wrap, AES-CCM.

Single-message reference primitives come from :mod:`stack.crypto.primitives`; AES-CCM (one
single-message class, and the batch engines behind one API) from the :mod:`stack.crypto.ccm`
package.
"""

from stack.crypto.ccm import (
    AESCCM,
    CCM_MAX_PAYLOAD,
    available_engines,
    ccm_decrypt,
    ccm_encrypt,
    default_engine,
    engine_status,
    open_batch,
    open_many,
    seal_batch,
    seal_many,
    warm_up,
)
from stack.crypto.primitives import (
    aes_cmac,
    aes_ecb_encrypt,
    dot16kdf,
    unwrap_key,
    unwrap_key_padded,
    wrap_key,
    wrap_key_padded,
)

__all__ = [
    "AESCCM",
    "CCM_MAX_PAYLOAD",
    "aes_cmac",
    "aes_ecb_encrypt",
    "available_engines",
    "ccm_decrypt",
    "ccm_encrypt",
    "default_engine",
    "dot16kdf",
    "engine_status",
    "open_batch",
    "open_many",
    "seal_batch",
    "seal_many",
    "unwrap_key",
    "unwrap_key_padded",
    "warm_up",
    "wrap_key",
    "wrap_key_padded",
]
