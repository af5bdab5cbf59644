"""The cleanup and expiry commands' shared shape (pipeline_project/lib/commands.py): a progress bar
on a terminal, nothing but the summary otherwise, bad options refused."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def expired_keys(org, owner):
    from datetime import timedelta

    from django.utils import timezone

    return [ApiKeyFactory(organization=org, created_by=owner, expires_at=timezone.now() - timedelta(hours=1))
            for _ in range(3)]  # fmt: skip


def test_a_terminal_gets_a_progress_bar_then_the_summary(expired_keys):
    out = Terminal()
    call_command("expire_api_keys", stdout=out)
    assert "Revoking" in out.getvalue() and out.getvalue().endswith("3 expired API keys revoked.\n")


def test_elsewhere_only_the_summary_and_no_counting_query(expired_keys):
    out = io.StringIO()
    with CaptureQueriesContext(connection) as queries:
        call_command("expire_api_keys", stdout=out)
    assert out.getvalue() == "3 expired API keys revoked.\n"
    assert not any(query["sql"].startswith("SELECT COUNT") for query in queries.captured_queries)


@pytest.mark.parametrize(
    "command", [["expire_results"], ["expire_api_keys"], ["prune_webhook_deliveries", "--older-than", "3"]]
)
def test_a_batch_size_below_one_is_refused(command):
    with pytest.raises(CommandError, match="batch-size"):
        call_command(*command, "--batch-size", "0")
