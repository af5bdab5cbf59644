"""Redaction, before anything is stored: what an audit record keeps of a request never holds a
password, token, key or secret.

Two nets: values under a sensitive key name (``password``, ``token``, ``secret``, ``api_key``,
``authorization``, ``cookie``, ... and ``AUDIT_REDACT_KEYS``) are replaced wherever they are
(JSON bodies at any depth, query strings), and any text kept (body excerpts, query values, path,
user agent, error messages) is scrubbed of credential-shaped strings: our API keys, JWTs,
``whsec_`` secrets, ``Bearer``/``Api-Key`` credentials, and the exact credentials this request
carried (its ``Authorization`` / ``X-API-Key`` / ``Cookie`` values, which are never stored).
"""

import json
import re
from functools import lru_cache
from urllib.parse import parse_qsl

from django.conf import settings

REDACTED = "[redacted]"
SENSITIVE = (
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|^key$|raw[-_]?key|authorization|cookie|credential|signature"
    r"|private|refresh|access|session|csrf|otp"
)
_TOKEN_SHAPES = re.compile(
    r"dpk_[A-Za-z0-9]+_[A-Za-z0-9]+"  # our API keys
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"  # JWTs
    r"|whsec_[A-Za-z0-9+/=]+"  # webhook secrets
    r"|(?i:bearer|api-key|basic)\s+[A-Za-z0-9._~+/=-]{8,}"
)


@lru_cache(maxsize=8)
def _sensitive(extra: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join([SENSITIVE, *extra]), re.IGNORECASE)


def sensitive_key(key: str) -> bool:
    return bool(_sensitive(tuple(settings.AUDIT_REDACT_KEYS)).search(str(key)))


class Redactor:
    """Redacts what one request sent; ``credentials``: the exact secrets it carried."""

    def __init__(self, credentials: list[str] = ()):
        self.credentials = sorted({value for value in credentials if value and len(value) >= 8}, key=len, reverse=True)

    def text(self, value: str) -> str:
        value = str(value).replace("\x00", "")
        for credential in self.credentials:
            value = value.replace(credential, REDACTED)
        return _TOKEN_SHAPES.sub(REDACTED, value)

    def data(self, value):
        """A JSON value with every sensitive key's value replaced and every string scrubbed."""
        if isinstance(value, dict):
            return {self.text(k): REDACTED if sensitive_key(k) else self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, float):
            return str(value)  # stored exactly as hashed (JSON numbers may not round-trip)
        return value

    def query(self, query_string: str) -> dict:
        pairs = parse_qsl(query_string, keep_blank_values=True)
        return {self.text(k): REDACTED if sensitive_key(k) else self.text(v) for k, v in pairs}

    def body(self, raw: bytes, content_type: str, limit: int) -> dict | None:
        """What is kept of a request body: a JSON body redacted, as an excerpt of at most ``limit``
        characters; for anything else, its type and size only (uploads are never stored)."""
        if not raw:
            return None
        if "json" in content_type:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            if parsed is not None:
                redacted = self.data(parsed)
                text = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
                if len(text) <= limit:
                    return {"json": redacted}
                return {"excerpt": text[:limit], "truncated": True, "size": len(raw)}
        if content_type.startswith("application/x-www-form-urlencoded"):
            text = json.dumps(self.query(raw.decode("latin-1")), ensure_ascii=False)
            return {"form": text[:limit], "size": len(raw)}
        return {"content_type": content_type[:100], "size": len(raw)}
