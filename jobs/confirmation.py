"""Two-step cancellation (seed 004): a signed token binds a confirmation to one job and one caller."""

from django.core import signing

CANCEL_TOKEN_MAX_AGE = 120  # seconds
_SALT = "jobs.cancel-confirmation"


def cancel_token(*, job_id, actor: str) -> str:
    return signing.TimestampSigner(salt=_SALT).sign(f"{job_id}|{actor}")


def cancel_token_error(token: str, *, job_id, actor: str) -> str | None:
    """None when ``token`` confirms cancelling ``job_id`` by ``actor``; else why not."""
    try:
        value = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=CANCEL_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        return "The confirmation token has expired; request a new one."
    except signing.BadSignature:
        return "The confirmation token is not valid."
    if value != f"{job_id}|{actor}":
        return "The confirmation token was issued for another job or caller."
    return None
