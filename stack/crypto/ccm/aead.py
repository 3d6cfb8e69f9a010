"""The single-message AES-CCM of the project, in the shape of pyca's ``AESCCM``.

:class:`AESCCM` is the one single-message CCM: ``encrypt(nonce, data, associated_data)`` /
``decrypt(...)`` take any CCM parameters (16/24/32-byte key, 7–13-byte nonce, even tag 4–16,
AAD) and run on ``cryptography``; bad sizes raise up front and a failed tag raises
:class:`~stack.errors.IntegrityError`. ``encrypt_many`` / ``decrypt_many`` hand lists to the
batch engines. :func:`ccm_encrypt` / :func:`ccm_decrypt` are its functional form, used by the
MPDU codec.

CCM per RFC 3610 / NIST SP 800-38C: ``B_0 = flags | N | l(m)``, ``X_1 = E(K, B_0)``,
``X_{i+1} = E(K, X_i ^ B_i)``, ``A_i = flags' | N | i``, ``S_i = E(K, A_i)``,
``C = P ^ S_1 S_2 ...``, ``U = T ^ first-M-bytes(S_0)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM as _PycaAESCCM

from stack.crypto.ccm.engines import resolve
from stack.crypto.ccm.lists import open_many, seal_many
from stack.crypto.ccm.params import CCM_KEY_LEN, CCM_TAG_LEN
from stack.crypto.ccm.validate import check_key, check_message, check_nonce, check_tag_len
from stack.errors import IntegrityError, MalformedError

__all__ = ["AESCCM", "ccm_decrypt", "ccm_encrypt"]


class AESCCM:
    """AES-CCM of one key and tag length; single messages on ``cryptography``, lists on the
    selected batch engine (AES-128, 13-byte nonces, 8-byte tags, no AAD)."""

    __slots__ = ("_key", "_pyca", "_tag_length", "engine", "threads")

    def __init__(
        self,
        key: bytes,
        tag_length: int = CCM_TAG_LEN,
        *,
        engine: str | None = None,
        threads: int = 1,
    ) -> None:
        self._key = check_key(key)
        self._tag_length = check_tag_len(tag_length)
        self._pyca = _PycaAESCCM(self._key, tag_length=self._tag_length)
        self.engine = "reference" if engine == "reference" else resolve(engine)
        self.threads = threads

    def __repr__(self) -> str:
        return f"AESCCM(<{len(self._key) * 8}-bit key>, tag_length={self._tag_length})"

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None = None) -> bytes:
        """Return ciphertext ‖ tag of ``data`` (``associated_data`` authenticated, not sent)."""
        n = check_nonce(nonce)
        data, aad = check_message(n, data, associated_data, self._tag_length, sealed=False)
        return self._pyca.encrypt(n, data, aad)

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None = None) -> bytes:
        """Return the plaintext of ciphertext ‖ tag; raise :class:`IntegrityError` on a bad tag."""
        n = check_nonce(nonce)
        data, aad = check_message(n, data, associated_data, self._tag_length, sealed=True)
        try:
            return self._pyca.decrypt(n, data, aad)
        except InvalidTag:
            raise IntegrityError("AES-CCM tag check failed", reason="bad_icv") from None

    def _check_batchable(self) -> None:
        if len(self._key) != CCM_KEY_LEN or self._tag_length != CCM_TAG_LEN:
            raise MalformedError("encrypt_many/decrypt_many need a 16-byte key and 8-byte tags")

    def encrypt_many(self, nonces: Sequence[bytes], payloads: Sequence[bytes]) -> list[bytes]:
        """:func:`~stack.crypto.ccm.seal_many` with this key and engine."""
        self._check_batchable()
        return seal_many(self._key, nonces, payloads, engine=self.engine, threads=self.threads)

    def decrypt_many(self, nonces: Sequence[bytes], sealed: Sequence[bytes]) -> list[bytes | None]:
        """:func:`~stack.crypto.ccm.open_many` with this key and engine (``None`` where a tag
        fails)."""
        self._check_batchable()
        return open_many(self._key, nonces, sealed, engine=self.engine, threads=self.threads)


def ccm_encrypt(
    key: bytes, nonce: bytes, payload: bytes, aad: bytes = b"", tag_len: int = CCM_TAG_LEN
) -> bytes:
    """``AESCCM(key, tag_len).encrypt(nonce, payload, aad)``: ciphertext ‖ tag."""
    return AESCCM(key, tag_len, engine="reference").encrypt(nonce, payload, aad)


def ccm_decrypt(
    key: bytes, nonce: bytes, sealed: bytes, aad: bytes = b"", tag_len: int = CCM_TAG_LEN
) -> bytes:
    """``AESCCM(key, tag_len).decrypt(nonce, sealed, aad)``; :class:`IntegrityError` on a bad
    tag."""
    return AESCCM(key, tag_len, engine="reference").decrypt(nonce, sealed, aad)
