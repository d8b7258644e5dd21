"""Secrets at rest: the first key encrypts, every key decrypts, rotation moves to the first."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.kernel.crypto import SecretBox, SecretBoxError, constant_time_equal, fingerprint


def test_round_trip_and_ciphertext_hides_the_secret() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    sealed = box.encrypt("xoxb-secret")
    assert "xoxb" not in sealed
    assert box.decrypt(sealed) == "xoxb-secret"


def test_old_keys_decrypt_and_rotation_re_encrypts_under_the_first() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed_with_old = SecretBox([old]).encrypt("s3cret")
    both = SecretBox([new, old])
    assert both.decrypt(sealed_with_old) == "s3cret"
    rotated = both.rotate(sealed_with_old)
    assert SecretBox([new]).decrypt(rotated) == "s3cret"
    with pytest.raises(SecretBoxError):
        SecretBox([new]).decrypt(sealed_with_old)


def test_bad_configuration_is_refused_clearly() -> None:
    with pytest.raises(SecretBoxError, match="no encryption key"):
        SecretBox([])
    with pytest.raises(SecretBoxError, match="url-safe base64"):
        SecretBox(["not-a-key"])


def test_helpers() -> None:
    assert fingerprint("a") == fingerprint("a") != fingerprint("b")
    assert len(fingerprint("a")) == 64
    assert constant_time_equal("abc", b"abc")
    assert not constant_time_equal("abc", "abd")
