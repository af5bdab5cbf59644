import pytest
from rq import Queue

from pipeline_project.lib.redis import get_redis


@pytest.fixture
def rq_queue():
    """The RQ job ids waiting on each queue, read from the real Redis."""

    def ids(name="default"):
        return Queue(name, connection=get_redis()).job_ids

    return ids
