"""Hand-written SQL for the few hottest reads, returning real model instances.

The ORM spends far longer compiling a join than PostgreSQL spends running it
(a prepared statement); authentication runs on every request, so its lookups are
written once as SQL here. ``fetch_one`` converts each column with Django's own
field converters, so the result is the same on PostgreSQL and SQLite.
"""

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connection, connections, models


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


def insert_values(obj: models.Model) -> tuple[str, list]:
    """The quoted column list and the parameters that insert ``obj`` as ``Model.save()`` would: every
    concrete field but a database-generated one, ``pre_save`` applied (``auto_now`` fields are set on
    ``obj``), each value prepared by its field. For inserts the ORM cannot write (``INSERT ... SELECT``,
    inside ``WITH``); ``mark_saved`` the object once the statement succeeded."""
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: ``connection`` is a proxy, slow per attribute
    fields, columns = _insert_fields(type(obj), obj.pk is not None, db.vendor)
    values = [field.pre_save(obj, add=True) for field in fields]
    if any(hasattr(value, "resolve_expression") for value in values):
        raise ValueError(f"{obj._meta.label}: expressions are not supported here; use the ORM.")
    return columns, [field.get_db_prep_save(value, db) for field, value in zip(fields, values, strict=True)]


@cache
def _insert_fields(model: type[models.Model], pk_set: bool, vendor: str) -> tuple[tuple, str]:
    meta, quote = model._meta, connection.ops.quote_name

    def inserted(field) -> bool:  # as Model._save_table: generated columns and an unset auto key are the database's
        return not field.generated and (pk_set or field is not meta.auto_field)

    fields = tuple(filter(inserted, meta.local_concrete_fields))
    return fields, ", ".join(quote(field.column) for field in fields)


def mark_saved(*objs: models.Model) -> None:
    """What ``Model.save()`` records on an instance it inserted."""
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
