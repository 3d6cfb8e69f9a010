"""AES-128-CCM for 802.16m MPDUs: one API over interchangeable engines.

802.16m protects MPDUs with AES-CCM, a 13-byte nonce (L = 2), an 8-byte ICV (M = 8) and no AAD.
The package keeps each job in its own module:

* :mod:`.aead` — :class:`AESCCM`, the single-message CCM (pyca's shape), and its functional form
  :func:`ccm_encrypt` / :func:`ccm_decrypt`;
* :mod:`.batch` — :func:`seal_batch` / :func:`open_batch`: every MPDU of a burst in one call, in
  place in a numpy buffer;
* :mod:`.lists` — :func:`seal_many` / :func:`open_many`: lists of ``bytes`` in and out;
* :mod:`.engines` — which engines exist and run on this CPU, and which one a call gets;
* :mod:`.validate` — the argument checks every entry point shares; :mod:`.params` — the sizes.

The engines' kernels live in the private modules ``_aesni`` (the lockstep kernel, on AES-NI or on
256/512-bit VAES vectors, whose LLVM IR ``_aes_ir`` builds) and ``_aes_table`` (portable table
AES), with ``_check``, ``_split``, ``_pyobj`` and ``_layout`` as their helpers.
"""

from stack.crypto.ccm.aead import AESCCM, ccm_decrypt, ccm_encrypt
from stack.crypto.ccm.batch import open_batch, run_in_place_trusted, seal_batch, warm_up
from stack.crypto.ccm.engines import (
    ENGINES,
    available_engines,
    default_engine,
    engine_status,
)
from stack.crypto.ccm.lists import open_many, seal_many
from stack.crypto.ccm.params import CCM_KEY_LEN, CCM_MAX_PAYLOAD, CCM_NONCE_LEN, CCM_TAG_LEN
from stack.errors import IntegrityError, KeyLengthError, MalformedError

__all__ = [
    "AESCCM",
    "CCM_KEY_LEN",
    "CCM_MAX_PAYLOAD",
    "CCM_NONCE_LEN",
    "CCM_TAG_LEN",
    "ENGINES",
    "IntegrityError",
    "KeyLengthError",
    "MalformedError",
    "available_engines",
    "ccm_decrypt",
    "ccm_encrypt",
    "default_engine",
    "engine_status",
    "open_batch",
    "open_many",
    "run_in_place_trusted",
    "seal_batch",
    "seal_many",
    "warm_up",
]
