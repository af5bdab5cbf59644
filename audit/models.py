"""The audit trail: every API call, staff action and system action, one row each, chained per
organization by hash so that an edited or deleted row is found (``audit/chain.py``).

References to users, keys and organizations carry no database constraint and are never cascaded:
a record outlives what it names (its ``username`` keeps who it was).
"""

import uuid

from django.db import models

from accounts.models import ApiKey, Organization, User


class ActorKind(models.TextChoices):
    USER = "user"  # a person with a JWT (or a failed login attempt)
    API_KEY = "api_key"
    STAFF = "staff"  # a staff user in the admin
    SYSTEM = "system"  # workers, the scheduler, management commands
    ANONYMOUS = "anonymous"  # a request with no valid credentials


def _reference(model, **kwargs):
    return models.ForeignKey(model, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False,
                             related_name="+", **kwargs)  # fmt: skip


class AuditLog(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    timestamp = models.DateTimeField()
    organization = _reference(Organization)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    user = _reference(User)
    username = models.CharField(max_length=150, blank=True, help_text="The user's name then (or the one attempted).")
    api_key = _reference(ApiKey)
    action = models.CharField(max_length=64, help_text="e.g. jobs.create, auth.login, admin.change, jobs.worker_lost")
    resource_type = models.CharField(max_length=32, blank=True)
    resource_id = models.CharField(max_length=64, blank=True)
    success = models.BooleanField()
    error_message = models.TextField(blank=True)
    request_details = models.JSONField(default=dict, blank=True, help_text="Redacted query, body excerpt, changes.")
    method = models.CharField(max_length=8, blank=True)
    path = models.CharField(max_length=2000, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    # The hash chain: ``chain`` is the organization's id (or "-" for records of no organization),
    # ``seq`` numbers its records from 1, ``hash`` = SHA-256 of ``prev_hash`` + the digest of this
    # record's content (``audit.chain.content_digest``).
    chain = models.CharField(max_length=36)
    seq = models.BigIntegerField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_logs"
        ordering = ["-timestamp", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="audit_chain_seq")]
        # Few indexes: every one is written (and WAL-logged) for every API call. The list and its
        # action, key, status and date filters walk the organization's records newest first (the admin's
        # list of all organizations' records walks audit_time: appended at its end, cheap to write); a
        # resource's and a user's history have their own. Pruning walks (chain, seq).
        indexes = [
            models.Index(fields=["organization", "-timestamp", "-id"], name="audit_org_time"),
            models.Index(fields=["-timestamp", "-id"], name="audit_time"),  # staff's list of every organization
            models.Index(fields=["organization", "resource_type", "resource_id"], name="audit_org_resource"),
            models.Index(fields=["organization", "user", "-timestamp"], name="audit_org_user"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.username or self.actor_kind} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class AuditChainHead(models.Model):
    """The last record of each chain: written in the same statement as the record (one round trip),
    its row lock orders concurrent writers of one organization."""

    chain = models.CharField(max_length=36, primary_key=True)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)

    class Meta:
        db_table = "audit_chain_heads"

    def __str__(self) -> str:
        return f"chain {self.chain} at seq {self.seq}"
