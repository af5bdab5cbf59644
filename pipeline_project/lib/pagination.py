"""Pagination in the API's list shapes: page numbers, and cursors for long lists.

``?page=&page_size=`` (``limit`` is an alias; at most 100) ->
``{"items", "total", "total_exact", "page", "page_size", "links": {...}}``.
A page past the end is an empty page, not an error. Counting is exact up to
``PAGINATION_EXACT_COUNT_LIMIT`` rows; past it ``total`` is PostgreSQL's planner estimate
(``total_exact`` false), so a page costs the same on a million rows as on ten thousand.
"""

import base64
import binascii
import json
import math
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.db.models import Q
from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from pipeline_project.lib import json_input
from pipeline_project.lib.fields import INT64_MAX, INT64_MIN

MAX_PAGE = 2**31 - 1  # documented as the maximum: far past any real list, and no OFFSET overflow
REPEATED = "Given more than once; send it once."


def single_param(query_params, name: str, default: str | None = None) -> str | None:
    """A single-valued query parameter; 400 naming it if it is given more than once (a client bug
    that would otherwise be settled silently by whichever value is read). Lists are filters of
    their own (``jobs.api.filters.ChoiceListFilter``)."""
    values = query_params.getlist(name)
    if len(values) > 1:
        raise serializers.ValidationError({name: [REPEATED]})
    return values[0] if values else default


def _positive_int(request, name: str, default: int, maximum: int | None = None) -> int:
    """A query parameter of ASCII digits in ``1..maximum``; 400 naming it otherwise."""
    raw = single_param(request.query_params, name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise serializers.ValidationError({name: ["Must be a positive integer."]})
    if maximum is not None and int(raw) > maximum:
        raise serializers.ValidationError({name: [f"Must be at most {maximum}."]})
    return int(raw)


def _page_size(request, default: int, maximum: int) -> int:
    """``page_size`` (or its alias ``limit``; both are checked, ``page_size`` wins), capped at ``maximum``."""
    alias = _positive_int(request, "limit", default)
    return min(_positive_int(request, "page_size", alias), maximum)


def count(queryset) -> tuple[int, bool]:
    """``(total, exact)``: an exact count up to the limit, else the planner's estimate."""
    limit = settings.PAGINATION_EXACT_COUNT_LIMIT
    queryset = queryset.order_by()
    total = queryset[: limit + 1].count()
    if total <= limit or connection.vendor != "postgresql":
        return (queryset.count() if total > limit else total), True
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return max(int(plan[0]["Plan"]["Plan Rows"]), limit + 1), False


def _links_schema(*names: str) -> dict:
    link = {"type": "string", "format": "uri", "nullable": True}
    return {"type": "object", "required": list(names), "properties": {name: link for name in names}}


def _integer_param(name: str, description: str, maximum: int | None = None) -> dict:
    schema = {"type": "integer", "minimum": 1}
    if maximum is not None:
        schema["maximum"] = maximum
    return {"name": name, "required": False, "in": "query", "description": description, "schema": schema}


class PagePagination(BasePagination):
    default_page_size = 20
    max_page_size = 100
    schema_suffix = "Page"  # component names: JobPage, PipelinePage, ...

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page = _positive_int(request, "page", 1, MAX_PAGE)
        self.page_size = _page_size(request, self.default_page_size, self.max_page_size)
        self.total, self.total_exact = count(queryset)
        offset = (self.page - 1) * self.page_size
        return list(queryset[offset : offset + self.page_size])

    def _link(self, page: int | None) -> str | None:
        if page is None:
            return None
        url = remove_query_param(self.request.build_absolute_uri(), "limit")
        url = replace_query_param(url, "page_size", self.page_size)
        return replace_query_param(url, "page", page)

    def get_paginated_response(self, data):
        last = max(1, math.ceil(self.total / self.page_size))
        return Response(
            {
                "items": data,
                "total": self.total,
                "total_exact": self.total_exact,
                "page": self.page,
                "page_size": self.page_size,
                "links": {
                    "self": self._link(self.page),
                    "next": self._link(self.page + 1 if self.page < last else None),
                    "prev": self._link(min(self.page - 1, last) if self.page > 1 else None),
                    "first": self._link(1),
                    "last": self._link(last),
                },
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["items", "total", "total_exact", "page", "page_size", "links"],
            "properties": {
                "items": schema,
                "total": {"type": "integer", "example": 42},
                "total_exact": {"type": "boolean", "description": "false: total is an estimate (large lists)."},
                "page": {"type": "integer", "example": 1},
                "page_size": {"type": "integer", "example": 20},
                "links": _links_schema("self", "next", "prev", "first", "last"),
            },
        }

    def get_schema_operation_parameters(self, view):
        return [_integer_param("page", "Page number, from 1.", MAX_PAGE), *_size_params(self)]


def _size_params(paginator) -> list[dict]:
    size = f"Items per page (default {paginator.default_page_size}; larger values count as {paginator.max_page_size})."
    return [_integer_param("page_size", size), _integer_param("limit", "Alias of page_size.")]


class CursorPagination(BasePagination):
    """Keyset pagination for long or append-only lists: no COUNT, stable under inserts.

    ``?cursor=`` (empty for the first page) -> ``{"items", "next_cursor", "links": {"self", "next"}}``.
    The view's ``cursor_ordering`` (e.g. ``("-created_at", "-id")``, ending in a unique
    field) orders the rows; the cursor carries the last row's values of those fields.
    """

    default_page_size = PagePagination.default_page_size
    max_page_size = PagePagination.max_page_size
    schema_suffix = "CursorPage"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = _page_size(request, self.default_page_size, self.max_page_size)
        self.ordering = tuple(getattr(view, "cursor_ordering", ("-id",)))
        model = queryset.model
        values = self._decode(single_param(request.query_params, "cursor", ""), model)
        if values is not None:
            queryset = queryset.filter(_after(self.ordering, values))
        rows = list(queryset.order_by(*self.ordering)[: self.page_size + 1])
        self.next_cursor = None
        if len(rows) > self.page_size:
            rows = rows[: self.page_size]
            last = rows[-1]
            self.next_cursor = _encode([getattr(last, name.lstrip("-")) for name in self.ordering])
        return rows

    def _decode(self, cursor: str, model):
        if not cursor:
            return None
        try:
            raw = json_input.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
            fields = [model._meta.get_field(name.lstrip("-")) for name in self.ordering]
            if not isinstance(raw, list) or len(raw) != len(fields):
                raise ValueError
            values = [_cursor_value(field, value) for field, value in zip(fields, raw, strict=True)]
            for value in values:  # what the database could not compare with: 500s otherwise
                if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                    raise ValueError
                if isinstance(value, datetime) and (value.tzinfo is None or value.astimezone(UTC) is None):
                    raise ValueError
            return values
        except (ValueError, TypeError, OverflowError, DjangoValidationError, binascii.Error):
            raise serializers.ValidationError({"cursor": ["Invalid cursor."]}) from None

    def get_paginated_response(self, data):
        url = self.request.build_absolute_uri()
        next_url = replace_query_param(url, "cursor", self.next_cursor) if self.next_cursor else None
        return Response({"items": data, "next_cursor": self.next_cursor, "links": {"self": url, "next": next_url}})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["items", "next_cursor", "links"],
            "properties": {
                "items": schema,
                "next_cursor": {"type": "string", "nullable": True, "description": "Pass as ?cursor= for more."},
                "links": _links_schema("self", "next"),
            },
        }

    def get_schema_operation_parameters(self, view):
        cursor = {
            "name": "cursor",
            "required": False,
            "in": "query",
            "description": "Empty (or absent) for the first page, then the previous page's `next_cursor`.",
            "schema": {"type": "string"},
        }
        return [cursor, *_size_params(self)]


class PageOrCursorPagination(BasePagination):
    """Pages by number, or by cursor when the request has ``?cursor=`` (deep listing of a
    long list without COUNT or OFFSET). The schema says the response is one of the two shapes."""

    schema_suffix = "List"

    def paginate_queryset(self, queryset, request, view=None):
        self.delegate = CursorPagination() if "cursor" in request.query_params else PagePagination()
        return self.delegate.paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        return self.delegate.get_paginated_response(data)

    def get_paginated_response_schema(self, schema):
        shapes = [PagePagination().get_paginated_response_schema(schema),
                  CursorPagination().get_paginated_response_schema(schema)]  # fmt: skip
        registry = getattr(self, "schema_registry", None)  # set by lib.schema.AutoSchema
        item = schema.get("items", {}).get("$ref", "").rsplit("/", 1)[-1]
        if registry is not None and item:  # named shapes: generated clients get JobPage | JobCursorPage
            from drf_spectacular.plumbing import ResolvedComponent

            names = [f"{item}{PagePagination.schema_suffix}", f"{item}{CursorPagination.schema_suffix}"]
            for name, shape in zip(names, shapes, strict=True):
                component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, schema=shape, object=name)
                registry.register_on_missing(component)
            shapes = [{"$ref": f"#/components/schemas/{name}"} for name in names]
        return {
            "oneOf": shapes,
            "description": "A page (`total`, `page`...) without `cursor`; a cursor page (`next_cursor`) with it.",
        }

    def get_schema_operation_parameters(self, view):
        cursor, *sizes = CursorPagination().get_schema_operation_parameters(view)
        cursor["description"] = "Switches to cursor pages (no total): empty for the first, then `next_cursor`."
        page = _integer_param("page", "Page number, from 1 (without `cursor`).", MAX_PAGE)
        return [page, cursor, *sizes]


def _cursor_value(field, value):
    """A decoded cursor value as the field's Python value, if it has the JSON type the field's
    values are encoded as (integers as numbers, everything else as strings); ValueError if not."""
    expected = int if isinstance(field, models.IntegerField) else str
    if isinstance(value, bool) or not isinstance(value, expected):
        raise ValueError(f"{field.name}: expected {expected.__name__}")
    return field.to_python(value)


class _CursorEncoder(DjangoJSONEncoder):
    """Datetimes in full (microseconds): DjangoJSONEncoder rounds to milliseconds, and a cursor must
    name the exact row it stopped at, or rows created in the same millisecond repeat or vanish."""

    def default(self, o):
        return o.isoformat() if isinstance(o, datetime) else super().default(o)


def _encode(values: list) -> str:
    raw = json.dumps(values, cls=_CursorEncoder, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(ordering: tuple[str, ...], values: list) -> Q:
    """Rows strictly after ``values`` in ``ordering``: (a > x) | (a = x & b > y) | ..."""
    condition = Q()
    for index, name in enumerate(ordering):
        field = name.lstrip("-")
        step = Q(**{f"{field}__{'lt' if name.startswith('-') else 'gt'}": values[index]})
        for previous, value in zip(ordering[:index], values[:index], strict=True):
            step &= Q(**{previous.lstrip("-"): value})
        condition |= step
    return condition
