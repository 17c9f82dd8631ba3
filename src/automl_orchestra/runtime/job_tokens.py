"""Short-lived bearer tokens for driver steps (``automl/nas``), which create child steps through the API.

A token names the driver step and an expiry and is signed with HMAC-SHA256 under a key derived from the
server's configured tokens, so every instance sharing that configuration accepts it and nobody holding
only a viewer or editor token can forge one. It grants the ``editor`` role: a driver may create and wait
on ordinary steps, never run code (code roles are checked separately and default to admin).
"""

from __future__ import annotations

import hashlib
import hmac
import time

PREFIX = "job1."
ROLE = "editor"


def _key(secret: str) -> bytes:
    return hashlib.sha256(b"automl-orchestra job token\0" + secret.encode()).digest()


def mint(secret: str, step: str, ttl_s: float) -> str:
    expiry = int(time.time() + ttl_s)
    payload = f"{step}.{expiry}"
    signature = hmac.new(_key(secret), payload.encode(), hashlib.sha256).hexdigest()
    return f"{PREFIX}{payload}.{signature}"


def verify(secret: str, token: str) -> str | None:
    """The role a valid, unexpired job token grants, or None."""
    if not token.startswith(PREFIX):
        return None
    payload, _, signature = token[len(PREFIX) :].rpartition(".")
    step, _, expiry = payload.rpartition(".")
    if not step or not expiry.isdigit():
        return None
    expected = hmac.new(_key(secret), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature) or int(expiry) < time.time():
        return None
    return ROLE
