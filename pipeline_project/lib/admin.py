"""Admin helpers shared by the apps."""

from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import model_ngettext
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils.html import format_html

from pipeline_project.lib.errors import ApplicationError

# Actions with a confirmation page list every selected object on it: past this many, staff narrow
# the selection (filters) instead of confirming a page nobody reads.
CONFIRM_MAX_OBJECTS = 500


def status_badge(status: str, colours: dict[str, str]):
    """``status`` on a coloured pill (``colours``: status -> background; white text reads on each,
    in the light and the dark theme)."""
    return format_html(
        '<span class="status-badge status-{}" style="background:{};color:#fff;border-radius:4px;padding:1px 6px;'
        'font-size:0.85em;white-space:nowrap">{}</span>',
        status,
        colours.get(status, "#666"),
        status,
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through their services: staff list and open them, never add, edit
    or delete them here. Actions declared with ``permissions=["manage"]`` need the model's change
    permission."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")


def confirmed_action(
    modeladmin: admin.ModelAdmin,
    request,
    queryset,
    *,
    title: str,
    verb: str,
    skip_reason: Callable[[object], str | None],
    perform: Callable[[object], object],
    past: str = "",
    note: str = "",
) -> TemplateResponse | None:
    """An admin action in two steps, as Django's ``delete_selected``: the first POST answers a
    page listing what ``verb`` will apply to and what it will skip, and why (``skip_reason``
    answers None for an object it applies to); that page posts the same action again with
    ``post=yes``, which calls ``perform`` on each object still eligible, one transaction each
    (a service's ``ApplicationError`` skips that object with its message), and ends with a
    message counting what was done and skipped.

    ``perform`` runs inside the transaction: audit the staff action there, so both commit
    together. ``past`` (e.g. "revoked" for ``verb`` "revoke") words the page and the message
    ("... can be revoked", "Revoked 2 API keys."); ``note`` is a line of warning on the page (what
    the action does, whether it can be undone)."""
    if queryset.order_by()[: CONFIRM_MAX_OBJECTS + 1].count() > CONFIRM_MAX_OBJECTS:  # no COUNT over millions
        modeladmin.message_user(
            request,
            f"Select at most {CONFIRM_MAX_OBJECTS} {modeladmin.opts.verbose_name_plural} at a time: "
            "narrow the list with its filters first.",
            messages.ERROR,
        )
        return None
    objects = list(queryset)
    if request.POST.get("post") == "yes":
        done, skipped = _apply(objects, skip_reason, perform)
        _report(modeladmin, request, verb, done, skipped, past=past)
        return None
    plan = [(obj, skip_reason(obj)) for obj in objects]
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "verb": verb,
        "past": past or verb,
        "note": note,
        "opts": modeladmin.opts,
        "applies": [obj for obj, reason in plan if reason is None],
        "skipped": [(obj, reason) for obj, reason in plan if reason is not None],
        "selected": objects,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/action_confirmation.html", context)


def _apply(objects: Iterable, skip_reason, perform) -> tuple[int, list[tuple[object, str]]]:
    done, skipped = 0, []
    for obj in objects:
        reason = skip_reason(obj)
        if reason is None:
            try:
                with transaction.atomic():
                    perform(obj)
            except ApplicationError as exc:  # changed since the confirmation page: say why
                reason = exc.message
            else:
                done += 1
                continue
        skipped.append((obj, reason))
    return done, skipped


def _report(modeladmin, request, verb: str, done: int, skipped: list[tuple[object, str]], *, past: str = "") -> None:
    name = modeladmin.opts.verbose_name_plural
    if past:  # "Revoked 1 API key."
        text = f"{past.capitalize()} {done} {model_ngettext(modeladmin.opts, done)}."
    else:
        text = f"{verb.capitalize()}: {done} {name}."
    modeladmin.message_user(request, text, messages.SUCCESS if done else messages.INFO)
    if skipped:
        shown = "; ".join(f"{obj}: {reason}" for obj, reason in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        modeladmin.message_user(request, f"Skipped {len(skipped)}: {shown}{more}.", messages.WARNING)
