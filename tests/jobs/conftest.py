import pytest
from rq import Queue

from pipeline_project.lib.redis import get_redis


@pytest.fixture
def rq_queue():
    """The RQ job ids waiting on each queue, read from the real Redis."""

    def ids(name="default"):
        return Queue(name, connection=get_redis()).job_ids

    return ids


def drain(worker_class) -> None:
    queues = [Queue(name, connection=get_redis()) for name in ("high", "default", "low")]
    worker_class(queues, connection=get_redis()).work(burst=True, with_scheduler=False)


@pytest.fixture
def run_worker():
    """Drains the job queues with our worker class, in process (burst mode): jobs run here,
    their documents' stages in its parser child process."""
    from jobs.worker import Worker

    return lambda: drain(Worker)


@pytest.fixture
def run_stock_worker():
    """Drains the job queues with RQ's own SimpleWorker, in process: stages run unisolated."""
    from rq import SimpleWorker

    return lambda: drain(SimpleWorker)
