"""The API's FilterSet base: a filter given an empty value it cannot take, or a single-valued
filter given twice, is a 400, not ignored."""

import django_filters as filters

from pipeline_project.lib.pagination import REPEATED


class FilterSet(filters.FilterSet):
    """``?pipeline=`` or ``?created_after=`` is not a UUID or a date-time; django-filter would
    quietly drop it, and the schema (which the server must not be looser than) forbids it. Only
    text filters take an empty value (no filter). A list's items are checked by its own field."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name, declared in self.filters.items():
            empty = name in self.data and self.data.get(name) == ""
            if empty and not isinstance(declared, filters.CharFilter):
                self.form.add_error(name, "Must not be empty.")
                valid = False
            lists = filters.MultipleChoiceFilter | filters.BaseCSVFilter
            if len(self.data.getlist(name)) > 1 and not isinstance(declared, lists):
                self.form.add_error(name, REPEATED)
                valid = False
        return valid
