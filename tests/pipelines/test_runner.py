import pytest

from pipelines import runner
from pipelines.stages import StageError


def test_transient_errors_are_retried_with_exponential_backoff(monkeypatch):
    delays, calls = [], []
    monkeypatch.setattr(runner.time, "sleep", delays.append)

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise StageError("fetch_timeout", "slow", transient=True)
        return {"ok": True}

    assert runner.with_retries("fetch", {"attempts": 4, "backoff_seconds": 1.5}, flaky) == {"ok": True}
    assert delays == [1.5, 3.0, 6.0]


def test_permanent_errors_and_the_last_attempt_are_not_retried(monkeypatch):
    delays = []
    monkeypatch.setattr(runner.time, "sleep", delays.append)

    def broken():
        raise StageError("invalid_document", "bad")

    with pytest.raises(StageError) as error:
        runner.with_retries("extract_text", {"attempts": 3, "backoff_seconds": 1}, broken)
    assert error.value.stage == "extract_text" and delays == []

    def always_transient():
        raise StageError("fetch_timeout", "slow", transient=True)

    with pytest.raises(StageError):
        runner.with_retries("fetch", {"attempts": 2, "backoff_seconds": 1}, always_transient)
    assert delays == [1]
