import pytest
from rq import Queue

from pipeline_project.lib.redis import get_redis


@pytest.fixture
def rq_queue():
    """The RQ job ids waiting on each queue, read from the real Redis."""

    def ids(name="default"):
        return Queue(name, connection=get_redis()).job_ids

    return ids


@pytest.fixture
def run_worker():
    """Drains the job queues with our worker class, in process (burst mode): jobs run here,
    their documents' stages in its parser child process."""
    from jobs.worker import Worker

    def drain():
        queues = [Queue(name, connection=get_redis()) for name in ("high", "default", "low")]
        Worker(queues, connection=get_redis()).work(burst=True, with_scheduler=False)

    return drain
