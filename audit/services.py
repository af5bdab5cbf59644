"""``audit_record``: the one writer of audit records (API middleware, admin, workers, commands).

Two ways in:
- ``audit_record``: written now, in the caller's transaction (staff and system actions: the record
  commits or rolls back with the action). On PostgreSQL one statement, chained in it: the chain
  head of its organization is upserted (its row lock orders concurrent writers) and the record
  inserted with the head's new ``seq`` and hashes.
- ``audit_request`` (the middleware's, for every API call): the record is handed to Redis (one
  round trip: the request is not held up by a database commit) and written in batches by an RQ
  job on the ``high`` queue (``audit.tasks.write_queued_records``), enqueued by a request at most
  once a second (``WRITE_INTERVAL``: under load, one job writes a second's records in a few
  statements); the scheduler runs it every 10 s too, for the last records of a quiet spell. Not
  in the web process: a writer thread there would hold the GIL while the next request waits. If Redis fails, the record
  is written directly; if that fails too, it is logged whole at ERROR. A record is never silently
  lost, and an audit failure never fails the request.
"""

import json
import logging
import uuid
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address
from rq import Queue

from audit import chain
from audit.models import ActorKind, AuditChainHead, AuditLog
from audit.selectors import audit_prunable_through
from pipeline_project.lib import logs, sql
from pipeline_project.lib.batches import in_locked_batches
from pipeline_project.lib.redis import get_redis

logger = logging.getLogger(__name__)

QUEUED = "audit:queued"  # Redis list of records (JSON) waiting for the writer
WRITER_DUE = "audit:writer-due"  # set for WRITE_INTERVAL once a request enqueued the writer
WRITE_INTERVAL = 1  # seconds
WRITER = "audit.tasks.write_queued_records"
WRITE_BATCH = 500

_LIMITS = {"username": 150, "action": 64, "resource_type": 32, "resource_id": 64, "method": 8, "path": 2000,
           "request_id": 64, "user_agent": 512}  # fmt: skip


def audit_record(*, action: str, actor_kind: str, success: bool = True, organization_id=None, user_id=None,
                 username: str = "", api_key_id=None, resource_type: str = "", resource_id="",
                 error_message: str = "", request_details: dict | None = None, method: str = "", path: str = "",
                 status_code: int | None = None, duration_ms: int | None = None, request_id: str = "",
                 ip_address: str | None = None, user_agent: str = "", timestamp: datetime | None = None,
                 record_id: uuid.UUID | None = None) -> AuditLog:  # fmt: skip
    """Writes one audit record (already redacted: see ``audit.redaction``) now and returns it."""
    record = _build(**locals())
    if connection.vendor == "postgresql":
        _insert_chained(record, chain.content_digest(record))
    else:  # SQLite (make run)
        _write_batch([record])
    return record


def _build(*, action, actor_kind, success, organization_id, user_id, username, api_key_id, resource_type,
           resource_id, error_message, request_details, method, path, status_code, duration_ms, request_id,
           ip_address, user_agent, timestamp, record_id) -> AuditLog:  # fmt: skip
    record = AuditLog(
        id=record_id or uuid.uuid4(),
        timestamp=timestamp or timezone.now(),
        organization_id=organization_id,
        actor_kind=actor_kind,
        user_id=user_id,
        username=username,
        api_key_id=api_key_id,
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id or ""),
        success=success,
        error_message=_text(error_message),
        request_details=request_details or {},
        method=method,
        path=path,
        status_code=status_code,
        duration_ms=duration_ms,
        request_id=request_id,
        ip_address=_ip(ip_address),
        user_agent=user_agent,
        chain=chain.chain_of(organization_id),
    )
    for name, limit in _LIMITS.items():
        setattr(record, name, _text(getattr(record, name))[:limit])
    return record


def _write_batch(records: list[AuditLog]) -> None:
    """Chains and inserts ``records`` (in their order) in one transaction: the heads of their
    chains locked (in a fixed order), the records inserted in one statement, the heads moved."""
    with transaction.atomic():
        chains = sorted({record.chain for record in records})
        heads = {head.chain: head for head in AuditChainHead.objects.select_for_update().filter(chain__in=chains)
                 .order_by("chain")}  # fmt: skip
        for record in records:
            head = heads.get(record.chain) or AuditChainHead(chain=record.chain, seq=0, hash=chain.GENESIS)
            record.seq, record.prev_hash = head.seq + 1, head.hash
            record.hash = chain.link(record.prev_hash, chain.content_digest(record))
            head.seq, head.prev_hash, head.hash = record.seq, record.prev_hash, record.hash
            heads[record.chain] = head
        _insert(records)
        AuditChainHead.objects.bulk_create(heads.values(), update_conflicts=True, unique_fields=["chain"],
                                           update_fields=["seq", "hash", "prev_hash"])  # fmt: skip


def _insert_chained(record: AuditLog, digest: str) -> None:
    quote = connection.ops.quote_name
    heads, logs = quote(AuditChainHead._meta.db_table), quote(AuditLog._meta.db_table)
    fields = [field for field in AuditLog._meta.concrete_fields if field.attname not in ("seq", "prev_hash", "hash")]
    columns = ", ".join(quote(field.column) for field in fields)
    values = [field.get_db_prep_save(getattr(record, field.attname), connection) for field in fields]
    first_hash = chain.link(chain.GENESIS, digest)
    statement = (
        f"WITH head AS (INSERT INTO {heads} (chain, seq, hash, prev_hash) VALUES (%s, 1, %s, %s)"
        f" ON CONFLICT (chain) DO UPDATE SET seq = {heads}.seq + 1, prev_hash = {heads}.hash,"
        f" hash = encode(sha256(convert_to({heads}.hash || %s, 'UTF8')), 'hex')"
        " RETURNING seq, prev_hash, hash)"
        f" INSERT INTO {logs} ({columns}, seq, prev_hash, hash)"
        f" SELECT {', '.join(['%s'] * len(values))}, head.seq, head.prev_hash, head.hash FROM head"
        " RETURNING seq, prev_hash, hash"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [record.chain, first_hash, chain.GENESIS, digest, *values])
        record.seq, record.prev_hash, record.hash = cursor.fetchone()
    sql.mark_saved(record)


def audit_staff_action(*, request, action: str, obj, details: dict | None = None) -> AuditLog:
    """A staff user's action in the admin on ``obj`` (in the caller's transaction)."""
    return audit_record(
        action=action,
        actor_kind=ActorKind.STAFF,
        user_id=request.user.pk,
        username=request.user.get_username(),
        organization_id=getattr(obj, "organization_id", None),
        resource_type=obj._meta.model_name,
        resource_id=str(obj.pk),
        request_details=details or {},
        method=request.method,
        path=request.path,
        request_id=getattr(request, "request_id", ""),
        ip_address=request.META.get("REMOTE_ADDR"),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )


def _insert(records: list[AuditLog]) -> None:
    """Inserts ``records``: on PostgreSQL with COPY (the writer's batches: several times cheaper
    than an INSERT of many rows built by the ORM)."""
    if connection.vendor != "postgresql" or len(records) < 2:
        AuditLog.objects.bulk_create(records)
        return
    fields = AuditLog._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {quote(AuditLog._meta.db_table)} ({columns}) FROM STDIN") as copy:
            for record in records:
                copy.write_row([field.get_db_prep_save(getattr(record, field.attname), connection) for field in fields])


def audit_request(**fields) -> None:
    """The middleware's write of an API call's record: queued in Redis for the writer (or written
    now when ``AUDIT_DEFERRED_WRITES`` is off). Never raises."""
    fields.setdefault("timestamp", timezone.now())
    fields.setdefault("record_id", uuid.uuid4())
    if not settings.AUDIT_DEFERRED_WRITES:
        audit_record_safely(**fields)
        return
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.rpush(QUEUED, json.dumps(fields, default=str))
            pipe.set(WRITER_DUE, 1, nx=True, ex=WRITE_INTERVAL)
            _, writer_needed = pipe.execute()
    except Exception:
        logger.warning("audit record %s: Redis unavailable, written directly", fields["record_id"], exc_info=True)
        audit_record_safely(**fields)
        return
    if writer_needed:
        try:
            _writer_queue().enqueue_call(WRITER, result_ttl=0, meta={logs.HOUSEKEEPING: True})
        except Exception:  # the scheduler's run writes it
            logger.warning("could not enqueue the audit writer", exc_info=True)


@lru_cache(maxsize=4)
def _cached_queue(redis) -> Queue:
    return Queue("high", connection=redis)


def _writer_queue() -> Queue:
    return _cached_queue(get_redis())


def audit_record_safely(**fields) -> AuditLog | None:
    """``audit_record``, never raising: a failed write is queued in Redis for the writer, or logged whole."""
    fields.setdefault("timestamp", timezone.now())
    fields.setdefault("record_id", uuid.uuid4())
    try:
        return audit_record(**fields)
    except Exception:
        logger.exception("audit record %s could not be written; queueing it", fields["record_id"])
    queued = json.dumps(fields, default=str)
    try:
        get_redis().rpush(QUEUED, queued)
    except Exception:
        logger.error("audit record lost to storage, kept here: %s", queued, exc_info=True)
    return None


def audit_write_queued(*, batch_size: int = WRITE_BATCH) -> int:
    """Writes the records queued in Redis, in batches, oldest first; returns how many. One writer
    at a time (a Redis lock; another caller returns 0 at once). A batch is removed from Redis only
    once committed, and records already written (a writer that died before removing its batch)
    are skipped, so nothing is lost or written twice."""
    redis, written = get_redis(), 0
    lock = redis.lock("audit:writer", timeout=300)
    if not lock.acquire(blocking=False):
        return 0
    try:
        while queued := redis.lrange(QUEUED, 0, batch_size - 1):
            records = [_build(**_fields(json.loads(item))) for item in queued]
            done = set(AuditLog.objects.filter(pk__in=[r.pk for r in records]).values_list("pk", flat=True))
            records = [record for record in records if record.pk not in done]
            if records:
                try:
                    _write_batch(records)
                except IntegrityError:  # a new chain's first record raced a direct write: once more
                    _write_batch(records)
            redis.ltrim(QUEUED, len(queued), -1)
            written += len(records)
    finally:
        lock.release()
    return written


def _fields(queued: dict) -> dict:
    queued["timestamp"] = datetime.fromisoformat(queued["timestamp"])
    queued["record_id"] = uuid.UUID(queued["record_id"])
    return {"success": True, "organization_id": None, "user_id": None, "username": "", "api_key_id": None,
            "resource_type": "", "resource_id": "", "error_message": "", "request_details": None, "method": "",
            "path": "", "status_code": None, "duration_ms": None, "request_id": "", "ip_address": None,
            "user_agent": "", **queued}  # fmt: skip


def _text(value) -> str:
    return str(value or "").replace("\x00", "")


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return clean_ipv6_address(value) if ":" in value else value
    except Exception:
        return None


def audit_logs_prune(*, older_than: int, dry_run: bool = False, batch_size: int = 5000, progress=None) -> int:
    """The only way audit records go: deletes each chain's records older than ``older_than`` days,
    a prefix of the chain (oldest first), after recording the prune in that chain
    (``audit.pruned``, with ``through_seq``), so the chain stays verifiable from its first
    remaining record. Returns how many records went (with ``dry_run``: how many would, changing
    nothing). Deletes ``batch_size`` records per transaction, claimed with ``SKIP LOCKED``: two
    runs at once delete each record once and record the prune once (the chain head's row lock
    orders them); a run cut off mid-way is finished by the next one. ``progress(n)`` after each
    batch."""
    cutoff = timezone.now() - timedelta(days=older_than)
    total = 0
    for key in AuditChainHead.objects.order_by("chain").values_list("chain", flat=True):
        total += _prune_chain(key, cutoff=cutoff, older_than=older_than, dry_run=dry_run, batch_size=batch_size,
                              progress=progress)  # fmt: skip
    return total


def _prune_chain(key: str, *, cutoff, older_than: int, dry_run: bool, batch_size: int, progress) -> int:
    records = AuditLog.objects.filter(chain=key)
    if dry_run:
        through = audit_prunable_through(chain=key, cutoff=cutoff)
        return 0 if through is None else records.filter(seq__lte=through).count()
    with transaction.atomic():
        AuditChainHead.objects.select_for_update().filter(chain=key).exists()  # locks the head: writers and prunes wait
        through = audit_prunable_through(chain=key, cutoff=cutoff)
        if through is None:
            return 0
        if not chain.pruned_through(key, through):  # recorded by a run at once with this one, or cut off
            audit_record(action=chain.PRUNED, actor_kind=ActorKind.SYSTEM, username="system",
                         organization_id=None if key == chain.NO_ORGANIZATION else key, resource_type="audit_log",
                         request_details={"older_than_days": older_than, "cutoff": cutoff.isoformat(),
                                          "deleted": records.filter(seq__lte=through).count(),
                                          "through_seq": through})  # fmt: skip

    def delete(batch: list[tuple]) -> None:
        AuditLog.objects.filter(pk__in=[pk for (pk,) in batch]).delete()

    return in_locked_batches(records.filter(seq__lte=through).order_by("seq"), ["pk"], delete,
                             batch_size=batch_size, progress=progress)  # fmt: skip
