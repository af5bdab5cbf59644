"""Fixed-window rate counting: exact for small limits, batched per process for large ones."""

import pytest

from pipeline_project.lib.redis import get_redis
from pipeline_project.lib.throttling import count_hit, rate_window, reset_local_counts


@pytest.fixture
def rates(settings):
    def set_rate(rate):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"principal": rate}}
        return rate_window("principal", "user:1")

    return set_rate


def test_small_limits_count_every_hit_in_redis(rates):
    window = rates("10/hour")
    assert [count_hit(window) for _ in range(3)] == [1, 2, 3]
    assert int(get_redis().get(window.key)) == 3
    assert 0 < get_redis().ttl(window.key) <= window.wait + 2  # expires just after the window ends


def test_large_limits_flush_every_percent_of_the_limit(rates, settings):
    settings.THROTTLE_SYNC_INTERVAL = 3600
    window = rates("1000/hour")  # flushes every 10 hits
    totals = [count_hit(window) for _ in range(25)]
    assert totals == list(range(1, 26))  # the local estimate counts every hit
    assert int(get_redis().get(window.key)) == 21  # the first hit, then batches of 10


def test_processes_see_each_others_flushed_hits(rates, settings):
    settings.THROTTLE_SYNC_INTERVAL = 0  # flush every hit: behaves exactly
    window = rates("1000/hour")
    get_redis().set(window.key, 500)  # another process's hits
    assert count_hit(window) == 501
    reset_local_counts()
    assert count_hit(window) == 502


def test_unthrottled_scopes_have_no_window(rates):
    assert rates(None) is None
