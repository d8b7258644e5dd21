"""Secrets at rest: MultiFernet over HOOKHUB_ENCRYPTION_KEYS (first key encrypts, all decrypt)."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBoxError(RuntimeError):
    pass


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretBoxError("no encryption key configured (HOOKHUB_ENCRYPTION_KEYS)")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as exc:
            raise SecretBoxError(
                "HOOKHUB_ENCRYPTION_KEYS must hold url-safe base64 32-byte keys "
                "(`hookhub keys generate` prints one)"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretBoxError("secret cannot be decrypted with any configured key") from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the first key, so older keys can be retired."""
        return self._fernet.rotate(ciphertext.encode()).decode()


def fingerprint(secret: str) -> str:
    """A stable lookup key for a secret that must be found by value (e.g. a URL token)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
