"""Secrets the service must read back (webhook signing secrets) are stored encrypted, never in
clear: Fernet (AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package).

Keys: ``SECRETS_ENCRYPTION_KEYS``, comma-separated Fernet keys, newest first (the first encrypts,
all decrypt: add a new key in front to rotate, re-save, then drop the old one), or, when unset,
one key derived from ``SECRET_KEY`` (HKDF-SHA256), so that a database dump alone reveals nothing.
"""

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

__all__ = ["EncryptedTextField", "InvalidToken", "decrypt", "encrypt"]


@cache
def _box(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"pipeline-service secrets")
        keys = (base64.urlsafe_b64encode(derived.derive(secret_key.encode())).decode(),)
    return MultiFernet([Fernet(key) for key in keys])


def _current() -> MultiFernet:
    return _box(tuple(settings.SECRETS_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(text: str) -> str:
    return _current().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """Raises ``InvalidToken`` when no key decrypts ``token`` (a key dropped too early)."""
    return _current().decrypt(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """A text stored encrypted (``encrypt``), read back in clear. Not searchable: each write of
    the same text stores a different token."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return value if value in (None, "") else encrypt(value)

    def from_db_value(self, value, expression, connection):
        return value if value in (None, "") else decrypt(value)
