"""Our messages verify with the Standard Webhooks reference library (an independent
implementation), and secrets are stored encrypted."""

import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline_project.lib.crypto import EncryptedTextField, InvalidToken, decrypt, encrypt
from webhooks import signing

BODY = json.dumps({"type": "job.completed", "timestamp": "2026-11-24T12:00:00Z", "data": {"id": "j"}}).encode()


def signed(*secrets: str, body: bytes = BODY, timestamp: int | None = None) -> dict[str, str]:
    return signing.headers(list(secrets), signing.new_message_id(), timestamp or int(time.time()), body)


def test_a_message_verifies_with_the_reference_library():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert Webhook(secret).verify(BODY, signed(secret)) == json.loads(BODY)


def test_a_tampered_body_a_wrong_secret_or_an_old_timestamp_do_not_verify():
    secret = signing.new_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", signed(secret))
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, signed(secret))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, signed(secret, timestamp=int(time.time()) - 3600))


def test_during_a_rotation_both_secrets_verify():
    old, new = signing.new_secret(), signing.new_secret()
    headers = signed(new, old)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)


def test_the_headers_are_the_standard_ones():
    headers = signing.headers([signing.new_secret()], "msg_1", 1700000000, BODY)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,") and headers["content-type"] == "application/json"


def test_secrets_are_stored_encrypted_and_read_back(settings):
    secret = signing.new_secret()
    token = encrypt(secret)
    assert secret not in token and decrypt(token) == secret
    field = EncryptedTextField()
    stored = field.get_prep_value(secret)
    assert secret not in stored and field.from_db_value(stored, None, None) == secret
    assert field.get_prep_value("") == ""


def test_encryption_keys_rotate(settings):
    from cryptography.fernet import Fernet

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [old_key]
    token = encrypt("whsec_x")
    settings.SECRETS_ENCRYPTION_KEYS = [new_key, old_key]  # a new key in front: old tokens still read
    assert decrypt(token) == "whsec_x"
    settings.SECRETS_ENCRYPTION_KEYS = [new_key]  # the old key dropped
    with pytest.raises(InvalidToken):
        decrypt(token)
