"""Page-number pagination in the API's list shape.

``?page=&page_size=`` (``limit`` is an alias; at most 100) ->
``{"items", "total", "page", "page_size", "links": {"self", "next", "prev", "first", "last"}}``.
A page past the end is an empty page, not an error.
"""

import math

from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


def _positive_int(request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise serializers.ValidationError({name: ["Must be a positive integer."]})
    return value


class PagePagination(BasePagination):
    default_page_size = 20
    max_page_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page = _positive_int(request, "page", 1)
        size_param = "page_size" if "page_size" in request.query_params else "limit"
        self.page_size = min(_positive_int(request, size_param, self.default_page_size), self.max_page_size)
        self.total = queryset.count()
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
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["items", "total", "page", "page_size", "links"],
            "properties": {
                "items": schema,
                "total": {"type": "integer", "example": 42},
                "page": {"type": "integer", "example": 1},
                "page_size": {"type": "integer", "example": 20},
                "links": {
                    "type": "object",
                    "properties": {name: link for name in ("self", "next", "prev", "first", "last")},
                },
            },
        }

    def get_schema_operation_parameters(self, view):
        def param(name, description):
            return {
                "name": name,
                "required": False,
                "in": "query",
                "description": description,
                "schema": {"type": "integer", "minimum": 1},
            }

        return [
            param("page", "Page number, from 1."),
            param("page_size", f"Items per page (default {self.default_page_size}, max {self.max_page_size})."),
            param("limit", "Alias of page_size."),
        ]
