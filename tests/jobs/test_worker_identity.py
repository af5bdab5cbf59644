"""Job timelines name the worker by an opaque id, never its host name or process (item 13 of the security probe)."""

import re
import socket

import pytest

from jobs.engine import worker_name
from jobs.models import Job, JobEvent
from tests.jobs.test_processing import upload

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_processed_job_reveals_no_host_name(as_member, run_worker):
    job_id = upload(as_member, "a.txt", b"hello there")
    run_worker()
    job = Job.objects.get(pk=job_id)
    assert job.status == "completed"
    messages = list(JobEvent.objects.filter(job=job).values_list("message", flat=True))
    claimed = next(message for message in messages if message.startswith("claimed by "))
    assert re.fullmatch(r"claimed by w-[0-9a-f]{12}", claimed)
    timeline = str(as_member.get(f"/api/v1/jobs/{job_id}/events").json())
    for host in {socket.gethostname(), socket.getfqdn()}:
        assert host not in timeline


def test_the_worker_id_is_stable_for_the_process():
    assert worker_name() == worker_name()
