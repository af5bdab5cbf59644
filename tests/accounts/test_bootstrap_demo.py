import json

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Membership, Organization, User
from tests.conftest import key_client


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEBUG = True
    return tmp_path


def run(capsys) -> str:
    call_command("bootstrap_demo", "--base-url", "http://127.0.0.1:8000")
    return capsys.readouterr().out


def test_it_creates_the_demo_and_prints_working_credentials(db, var_dir, capsys):
    out = run(capsys)
    stored = json.loads((var_dir / "demo-credentials.json").read_text())
    assert oct((var_dir / "demo-credentials.json").stat().st_mode)[-3:] == "600"
    assert stored["api_key"] in out and stored["password"] in out and "http://127.0.0.1:8000/admin/" in out
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(stored["password"])
    assert Membership.objects.get(user=admin, organization__slug="demo").role == "admin"
    assert key_client(stored["api_key"]).get("/api/v1/auth/me").json()["organization"]["slug"] == "demo"


def test_it_is_idempotent(db, var_dir, capsys):
    first = run(capsys)
    second = run(capsys)
    assert first == second
    assert User.objects.count() == 1 and Organization.objects.count() == 1 and ApiKey.objects.count() == 1


def test_it_replaces_a_revoked_demo_key(db, var_dir, capsys):
    run(capsys)
    ApiKey.objects.update(revoked_at="2020-01-01T00:00:00Z")
    run(capsys)
    stored = json.loads((var_dir / "demo-credentials.json").read_text())
    assert key_client(stored["api_key"]).get("/api/v1/auth/me").status_code == 200


def test_it_refuses_to_run_without_debug(db, var_dir, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG only"):
        call_command("bootstrap_demo")
