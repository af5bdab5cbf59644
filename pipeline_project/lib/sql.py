"""Hand-written SQL for the few hottest reads, returning real model instances.

The ORM spends far longer compiling a join than PostgreSQL spends running it
(a prepared statement); authentication runs on every request, so its lookups are
written once as SQL here. ``fetch_one`` converts each column with Django's own
field converters, so the result is the same on PostgreSQL and SQLite.
"""

from functools import cache

from django.db import connection, models


@cache
def _converters(model: type[models.Model], field_names: tuple[str, ...], vendor: str) -> tuple:
    """Per column of a shape: the converters Django applies when reading it, with their column."""
    result = []
    for name in field_names:
        field = model._meta.get_field(name)
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        result.append(tuple((converter, column) for converter in converters))
    return tuple(result)


def columns(alias: str, model: type[models.Model], field_names: list[str]) -> str:
    """``alias."col1", alias."col2"`` for the given model fields (for a SELECT list)."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(model._meta.get_field(name).column)}" for name in field_names)


def fetch_one(sql: str, params: list, *shapes: tuple[type[models.Model], list[str]]) -> list | None:
    """Runs ``sql`` and splits its first row into one instance per ``(model, attnames)`` shape,
    in the order of the SELECT list (unlisted fields are deferred). A shape of
    ``(None, [name])`` yields that column's raw value."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    results, position = [], 0
    for model, field_names in shapes:
        values = row[position : position + len(field_names)]
        position += len(field_names)
        if model is None:
            results.append(values[0])
            continue
        converted = list(values)
        for index, converters in enumerate(_converters(model, tuple(field_names), connection.vendor)):
            for converter, column in converters:
                converted[index] = converter(converted[index], column, connection)
        results.append(instance(model, dict(zip(field_names, converted, strict=True))))
    return results


def instance(model: type[models.Model], values: dict) -> models.Model:
    """A model instance as loaded from the database, from ``{attname: python value}``;
    fields not given are deferred. (``Model.from_db`` wants the values in field order.)"""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])
