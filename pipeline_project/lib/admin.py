"""Admin helpers shared by the apps."""

import calendar
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import date
from functools import wraps

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import model_ngettext
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst

from pipeline_project.lib import pagination
from pipeline_project.lib.errors import ApplicationError

# Actions with a confirmation page list every selected object on it: past this many, staff narrow
# the selection (filters) instead of confirming a page nobody reads.
CONFIRM_MAX_OBJECTS = 500
SHORT_ID = re.compile(r"[0-9a-fA-F]{8}")  # the start of a uuid, as lists show it


def superusers_only(view):
    """``view`` behind the admin's login, for superusers alone: django-rq's queue pages (their
    actions empty queues and delete, requeue or stop RQ jobs, outside our services and audit
    trail) are not for every staff member."""

    @wraps(view)
    def only_superusers(request, *args, **kwargs):
        if not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return admin.site.admin_view(only_superusers)


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


class EstimatedCountPaginator(Paginator):
    """The admin list's count, as the API's: exact up to ``PAGINATION_EXACT_COUNT_LIMIT`` rows,
    past it the planner's estimate, so that a page costs the same over millions of rows."""

    @cached_property
    def count(self) -> int:
        return pagination.count(self.object_list)[0]


class LargeTableAdmin:
    """A ModelAdmin mixin for tables of millions of rows (jobs, audit records, deliveries): a page
    of the list costs about the same as over a few rows. No ``COUNT(*)`` (an estimate past
    ``PAGINATION_EXACT_COUNT_LIMIT``), no facet counts, and the ``date_hierarchy`` drill-down drawn
    from the calendar (``calendar_links``) instead of from the rows. Dates out of range in the
    drill-down's parameters get the admin's "?e=1" page, as other bad filters do. Pair it with an
    index that serves the list's ordering."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    change_list_template = "admin/large_change_list.html"
    search_by_id = False  # a search for an id (or its first 8 characters) goes through the primary key

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if self.search_by_id:
            try:
                return queryset.filter(pk=uuid.UUID(term)), False
            except ValueError:
                pass
            if SHORT_ID.fullmatch(term):  # as lists show ids: a range of the primary key's index
                low, high = uuid.UUID(term.lower() + "0" * 24), uuid.UUID(term.lower() + "f" * 24)
                return queryset.filter(pk__gte=low, pk__lte=high), False
        return super().get_search_results(request, queryset, search_term)

    def get_changelist_instance(self, request):
        if self.date_hierarchy and not _drilldown_in_range(request, self.date_hierarchy):
            raise IncorrectLookupParameters(f"{self.date_hierarchy}: no such date")
        return super().get_changelist_instance(request)

    def changelist_view(self, request, extra_context=None):
        context = {**(extra_context or {})}
        if self.date_hierarchy:
            context["calendar"] = calendar_links(request, self.date_hierarchy)
        return super().changelist_view(request, context)


def _drilldown_in_range(request, field: str) -> bool:
    """Whether the drill-down's year, month and day name a day Django can bound (its next day or
    year is still a ``datetime``: year 9999 is not)."""
    try:
        year, month, day = (int(request.GET[f"{field}__{part}"]) if f"{field}__{part}" in request.GET else None
                            for part in ("year", "month", "day"))  # fmt: skip
        if year is not None:
            date(year, month or 1, day or 1)
            return 1 <= year <= 9998
    except (ValueError, OverflowError):
        return False
    return True


def calendar_links(request, field: str) -> dict:
    """The list's date drill-down (years, months, days), as Django's ``date_hierarchy`` draws it
    but from the calendar alone: the stock one reads the first and last dates and the distinct
    years of the listed rows, scans over millions of rows. Links keep the other filters."""
    keys = [f"{field}__year", f"{field}__month", f"{field}__day"]
    params = request.GET.copy()
    for key in [*keys, "p"]:
        params.pop(key, None)

    def link(*parts: int) -> str:
        query = params.copy()
        for key, value in zip(keys, parts, strict=False):
            query[key] = str(value)
        return "?" + query.urlencode()

    def month_title(year: int, month: int) -> str:
        return capfirst(formats.date_format(date(year, month, 1), "YEAR_MONTH_FORMAT"))

    today = timezone.localdate()
    try:
        year, month, day = (int(request.GET[key]) if key in request.GET else None for key in keys)
        if year is None:
            return {"back": None, "choices": [{"link": link(y), "title": str(y)}
                                              for y in range(today.year - 2, today.year + 1)]}  # fmt: skip
        if month is None:
            last = today.month if year == today.year else 12
            months = [{"link": link(year, m), "title": month_title(year, m)} for m in range(1, last + 1)]
            return {"back": {"link": link(), "title": "All dates"}, "choices": months}
        if day is None:
            last = today.day if (year, month) == (today.year, today.month) else calendar.monthrange(year, month)[1]
            return {"back": {"link": link(year), "title": str(year)},
                    "choices": [{"link": link(year, month, d),
                                 "title": formats.date_format(date(year, month, d), "MONTH_DAY_FORMAT")}
                                for d in range(1, last + 1)]}  # fmt: skip
        return {"back": {"link": link(year, month), "title": month_title(year, month)},
                "choices": [{"title": formats.date_format(date(year, month, day), "MONTH_DAY_FORMAT")}]}  # fmt: skip
    except (ValueError, OverflowError):  # the list answers these with its "?e=1" redirect
        return {"back": None, "choices": []}


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
