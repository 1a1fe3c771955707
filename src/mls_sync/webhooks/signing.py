"""Standard Webhooks signatures (github.com/standard-webhooks/standard-webhooks, spec.md), made
with the `standardwebhooks` package so that a receiver verifying with any language's library
of the same specification accepts them.

Each delivery carries `webhook-id` (stable across retries: receivers dedupe on it),
`webhook-timestamp` (seconds since the epoch, when this attempt was signed; receivers refuse
old ones) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per
secret in use, space-separated. While a secret is being rotated the old one keeps signing
beside the new one, which the specification allows, so receivers can switch keys at leisure.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # the specification's form: whsec_ + base64 of the key
SECRET_BYTES = 32  # the specification asks for 24 to 64 bytes


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    """A delivery's `webhook-id`: made once per event and endpoint, kept across retries."""
    return f"msg_{uuid.uuid4().hex}"


def signed_headers(
    message_id: str, at: datetime, body: bytes, secrets_in_use: Sequence[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed at `at` with every secret in
    use (newest first); raises ValueError without one."""
    if not secrets_in_use:
        raise ValueError("a webhook needs at least one secret to sign with")
    signatures = [Webhook(secret).sign(message_id, at, body) for secret in secrets_in_use]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }
