"""Names an API request's action and resource from its route: ``jobs.create``, ``jobs.cancel``,
``auth.login``, ``api_keys.revoke``, ``webhooks.redeliver``, ... A new viewset action is named
``<basename plural>.<action>`` with no change here."""

from django.urls import ResolverMatch

# Router basenames: (resource type, plural used in action names)
RESOURCES = {
    "job": ("job", "jobs"),
    "api-key": ("api_key", "api_keys"),
    "pipeline": ("pipeline", "pipelines"),
    "webhook": ("webhook", "webhooks"),
    "audit-log": ("audit_log", "audit"),
}
STANDARD = {"list": "list", "retrieve": "retrieve", "create": "create", "update": "update",
            "partial_update": "update", "destroy": "delete"}  # fmt: skip
RENAMED = {("api-key", "delete"): "revoke", ("job", "delete"): "cancel"}  # what DELETE does there
NESTED = {"delivery_id": "webhook_delivery", "file_id": "job_file"}  # route kwargs naming a sub-resource
# Routes that are not viewsets: url name -> (action, resource type)
NAMED = {
    "auth-login": ("auth.login", ""),
    "auth-refresh": ("auth.refresh", ""),
    "auth-logout": ("auth.logout", ""),
    "auth-me": ("auth.me", "user"),
    "upload": ("jobs.upload", "job"),
    "health-queue": ("health.queue", ""),
    "webhook-default-secret": ("webhooks.default_secret", "webhook_secret"),
    "webhook-default-rotate": ("webhooks.default_secret_rotate", "webhook_secret"),
}


# The first word of every action name: API routes' plurals and named routes, staff actions
# ("admin.*") and system actions (``audit.listener``: jobs.*, webhooks.*, api_keys.*, audit.*).
FAMILIES = sorted({plural for _, plural in RESOURCES.values()} | {action.split(".")[0] for action, _ in NAMED.values()}
                  | {"admin"})  # fmt: skip


def name(match: ResolverMatch | None, method: str) -> tuple[str, str, str]:
    """``(action, resource_type, resource_id)`` of a request (the id from its route, if any)."""
    if match is None:
        return "unknown", "", ""
    func = match.func
    actions = getattr(func, "actions", None)
    if actions is not None:  # a viewset route
        basename = (getattr(func, "initkwargs", None) or {}).get("basename", "")
        resource_type, plural = RESOURCES.get(basename, (basename.replace("-", "_"), basename.replace("-", "_")))
        action = actions.get(method.lower())
        if action is None:
            action = "method_not_allowed"
        action = STANDARD.get(action, action)
        action = RENAMED.get((basename, action), action)
        for kwarg, nested_type in NESTED.items():
            if match.kwargs.get(kwarg):
                return f"{plural}.{action}", nested_type, str(match.kwargs[kwarg])
        return f"{plural}.{action}", resource_type, str(match.kwargs.get("pk") or "")
    action, resource_type = NAMED.get(match.url_name or "", ((match.url_name or "unknown").replace("-", "."), ""))
    return action, resource_type, ""
