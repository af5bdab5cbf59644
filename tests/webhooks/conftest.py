import pytest

from pipeline_project.lib.ssrf import close_kept_pools


@pytest.fixture(autouse=True)
def _no_kept_connections():
    """Each test's deliveries start without connections kept by an earlier one."""
    close_kept_pools()
    yield
    close_kept_pools()
