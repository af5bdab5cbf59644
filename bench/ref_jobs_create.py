"""A minimal reference for ``POST /api/v1/jobs``: a plain WSGI callable, no Django.

It does the durable work the real endpoint does for a url job, and nothing else: parse the
JSON body, read who listens to the organization's events (the webhooks outbox: none here), one
PostgreSQL transaction (psycopg) inserting the job row and its first ``job_events`` row into the
same tables, then the same RQ enqueue as ``jobs.queueing``
(``Queue.enqueue_call`` of ``jobs.tasks.run_job`` with RQ job id = our job id and
``on_stopped=Callback("jobs.tasks.job_stopped")``, in one Redis pipeline: one round trip), and
the call's audit record queued in Redis (one round trip, as ``audit.services.audit_request``).
No authentication, rate limit, validation or pipeline lookup, a two-field answer.

Served by ``bench_jobs_create.py`` under the same gunicorn settings as the application:

    gunicorn --pythonpath bench ref_jobs_create:application

Environment: ``DATABASE_URL``, ``REDIS_URL`` (as the application), ``REF_ORGANIZATION_ID``
(the organization the rows belong to), ``RQ_DEFAULT_TIMEOUT`` (seconds, default 600).
"""

import json
import os
import uuid
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb
from redis import Redis
from rq import Callback, Queue

INSERT_JOB = """
INSERT INTO jobs (id, organization_id, status, source_type, source_uri, file_name, mime_type, mode, priority, config,
                  metadata, webhook_url, progress_percent, progress_stage, stages_done, stages_total, attempts,
                  max_attempts, locked_by, request_hash, created_at, updated_at)
VALUES (%s, %s, 'queued', %s, %s, '', '', 'standard', 2, '{}', %s, '', 0, '', 0, 0, 0, 3, '', '', %s, %s)
"""
LISTENERS = "SELECT id, url, events FROM webhook_subscriptions WHERE organization_id = %s AND is_active"
INSERT_EVENT = """
INSERT INTO job_events (job_id, from_status, to_status, actor, message, created_at)
VALUES (%s, '', 'queued', 'reference', 'created', %s)
"""

_connections: dict[str, object] = {}  # opened lazily: gunicorn forks its workers after importing this


def _database() -> psycopg.Connection:
    conn = _connections.get("db")
    if conn is None or conn.closed:
        conn = _connections["db"] = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
    return conn


def _queue() -> Queue:
    queue = _connections.get("queue")
    if queue is None:
        redis = Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=2, socket_timeout=10)
        timeout = int(os.environ.get("RQ_DEFAULT_TIMEOUT", "600"))
        queue = _connections["queue"] = Queue("default", connection=redis, default_timeout=timeout)
    return queue


def application(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":  # the readiness probe of bench/common.py's gunicorn()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = json.loads(environ["wsgi.input"].read(length))
    job_id, now = uuid.uuid4(), datetime.now(UTC)
    conn = _database()
    conn.execute(LISTENERS, (os.environ["REF_ORGANIZATION_ID"],)).fetchall()
    with conn.transaction():
        conn.execute(INSERT_JOB, (job_id, os.environ["REF_ORGANIZATION_ID"], data["source_type"],
                                  data.get("source_uri", ""), Jsonb(data.get("metadata", {})), now, now))  # fmt: skip
        conn.execute(INSERT_EVENT, (job_id, now))
    queue = _queue()
    with queue.connection.pipeline() as pipe:
        queue.enqueue_call(
            "jobs.tasks.run_job",
            args=(str(job_id),),
            job_id=str(job_id),
            on_stopped=Callback("jobs.tasks.job_stopped"),
            pipeline=pipe,
        )
        pipe.execute()
    # The audit record of the call, queued for the writer as the audit middleware does (one round trip).
    record = {"action": "jobs.create", "resource_id": str(job_id), "status_code": 201, "timestamp": now.isoformat(),
              "request_details": {"body": {"json": data}}}  # fmt: skip
    with queue.connection.pipeline(transaction=False) as pipe:
        pipe.rpush("audit:queued", json.dumps(record))
        pipe.set("audit:writer-due", 1, nx=True, ex=1)
        pipe.execute()
    body = json.dumps({"id": str(job_id), "status": "queued"}).encode()
    start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
