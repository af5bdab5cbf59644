"""The hash chain of audit records, and its verification.

Each organization's records form one chain (records of no organization another, ``"-"``),
numbered by ``seq`` from 1. A record's ``hash`` is SHA-256 of the text ``prev_hash +
content_digest``, where ``content_digest`` is SHA-256 of the record's canonical content (every
column but the chain's own, as sorted-key JSON) and ``prev_hash`` the hash of the record before
it (64 zeros for the first). Editing any column of a record breaks its hash; deleting one leaves
a gap in ``seq`` (or, for the newest, a chain shorter than its head). Pruning deletes a chain's
oldest records and records that in the chain (``audit.pruned``, ``through_seq``): the chain is
verified from the first record that remains, whose ``prev_hash`` is taken as given.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from audit.models import AuditLog

GENESIS = "0" * 64
PRUNED = "audit.pruned"  # the action recording a prune, in the chain it pruned
NO_ORGANIZATION = "-"
CONTENT_FIELDS = [
    "id", "timestamp", "organization_id", "actor_kind", "user_id", "username", "api_key_id", "action",
    "resource_type", "resource_id", "success", "error_message", "request_details", "method", "path",
    "status_code", "duration_ms", "request_id", "ip_address", "user_agent", "chain",
]  # fmt: skip


def chain_of(organization_id) -> str:
    return NO_ORGANIZATION if organization_id is None else str(organization_id)


def content_digest(record: AuditLog) -> str:
    content = {}
    for name in CONTENT_FIELDS:
        value = getattr(record, name)
        if name == "timestamp":
            value = value.isoformat()
        elif name.endswith("id") and value is not None and not isinstance(value, str | int):
            value = str(value)
        content[name] = value
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def link(prev_hash: str, digest: str) -> str:
    return hashlib.sha256((prev_hash + digest).encode()).hexdigest()


@dataclass
class Break:
    chain: str
    record: AuditLog | None
    reason: str

    def __str__(self) -> str:
        where = f"record {self.record.id} (seq {self.record.seq})" if self.record is not None else "the head"
        return f"chain {self.chain}: {where}: {self.reason}"


def verify(chain: str, *, batch_size: int = 2000) -> tuple[int, Break | None]:
    """Walks one chain in ``seq`` order; returns how many records were checked and the first
    break found (None if the chain is intact)."""
    checked, previous = 0, None
    for record in _records(chain, batch_size):
        if previous is None and record.seq != 1 and not pruned_through(chain, record.seq - 1):
            return checked, Break(chain, record, f"the records before it (seq 1 to {record.seq - 1}) are missing")
        if previous is not None and record.seq != previous.seq + 1:
            return checked, Break(chain, record, f"the record before it (seq {previous.seq + 1}) is missing")
        if previous is not None and record.prev_hash != previous.hash:
            return checked, Break(chain, record, "its prev_hash is not the hash of the record before it")
        if record.hash != link(record.prev_hash, content_digest(record)):
            return checked, Break(chain, record, "its content does not match its hash (edited)")
        previous = record
        checked += 1
    from audit.models import AuditChainHead

    head = AuditChainHead.objects.filter(chain=chain).first()
    if head is not None and (previous is None or head.seq != previous.seq or head.hash != previous.hash):
        last = "no record" if previous is None else f"seq {previous.seq}"
        return checked, Break(chain, None, f"the chain ends at {last} but its head is seq {head.seq}: records deleted")
    return checked, None


def pruned_through(chain: str, seq: int) -> bool:
    """Whether a prune recorded in the chain (``prune_audit_logs``) took the records up to ``seq``:
    through it or further (a prune still deleting, or cut off mid-way, has left some of its prefix)."""
    return AuditLog.objects.filter(chain=chain, action=PRUNED, request_details__through_seq__gte=seq).exists()


def _records(chain: str, batch_size: int) -> Iterator[AuditLog]:
    after = 0
    while True:
        batch = list(AuditLog.objects.filter(chain=chain, seq__gt=after).order_by("seq")[:batch_size])
        yield from batch
        if len(batch) < batch_size:
            return
        after = batch[-1].seq
