"""The API's FilterSet base: a typed filter given an empty value is a 400, not ignored."""

import django_filters as filters


class FilterSet(filters.FilterSet):
    """``?pipeline=`` or ``?created_after=`` is not a UUID or a date-time; django-filter would
    quietly drop it, and the schema (which the server must not be looser than) forbids it.
    Text filters and comma-separated lists keep the empty value (no filter; an empty list)."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, declared in self.filters.items():
            empty = name in self.data and self.data.get(name) == ""
            lists = filters.BaseCSVFilter | filters.MultipleChoiceFilter
            if empty and not isinstance(declared, lists | filters.CharFilter):
                self.form.add_error(name, "Must not be empty.")
                valid = False
        return valid
