"""Secrets an account gives the server to use later (its own LLM provider key), encrypted
at rest with Fernet (AES-128-CBC and HMAC-SHA256, from the ``cryptography`` package).

The encryption key comes from MEMORYRELAY_ENCRYPTION_KEY (a Fernet key:
``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``)
or, when it is not set, is derived from DJANGO_SECRET_KEY with HKDF-SHA256. Changing
either makes the stored secrets unreadable (decrypt raises SecretUnreadable); the caller
falls back to what works without them."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretUnreadable(Exception):
    pass


def _fernet() -> Fernet:
    configured = getattr(settings, "MEMORYRELAY_ENCRYPTION_KEY", "")
    if configured:
        return Fernet(configured.encode())
    return _derived(settings.SECRET_KEY)


def _derived(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"memoryrelay-secrets",
                   info=b"fernet").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def secret_reencrypted(token: str) -> str | None:
    """``token`` encrypted with this server's key, when it was encrypted with the fixed key
    of earlier releases (public: anyone holding a copy of the database could read it); None
    when it needs nothing or cannot be read with either."""
    current = _fernet()
    try:
        current.decrypt(token.encode("ascii"))
        return None
    except (InvalidToken, ValueError):
        pass
    try:
        plain = _derived(settings.LEGACY_SECRET_KEY).decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError):
        return None
    return current.encrypt(plain).decode("ascii")


def secret_encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode("ascii")


def secret_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable("the secret cannot be decrypted with this server's key "
                               "(MEMORYRELAY_ENCRYPTION_KEY or DJANGO_SECRET_KEY changed?)"
                               ) from exc


def secret_mask(plain: str) -> str:
    """What may be shown of a secret: its first 3 and last 4 characters."""
    if len(plain) <= 10:
        return "…" + plain[-2:] if len(plain) > 4 else "…"
    return f"{plain[:3]}…{plain[-4:]}"
