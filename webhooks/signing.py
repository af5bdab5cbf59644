"""Standard Webhooks (standardwebhooks.com) messages: what any receiver using its libraries, or
Svix's, verifies unchanged.

A secret is ``whsec_`` + base64 of 24 random bytes. A message carries ``webhook-id`` (stable
across retries and redeliveries of one message), ``webhook-timestamp`` (Unix seconds of this
attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per
secret, space-separated (two while a rotated secret overlaps the new one).
"""

import base64
import hashlib
import hmac
import secrets
import uuid

SECRET_PREFIX = "whsec_"
USER_AGENT = "pipeline-service-webhooks/1.0"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(signing_secrets: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt of ``body``, signed with each of ``signing_secrets``."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(secret, message_id, timestamp, body) for secret in signing_secrets),
    }
