"""Serializer fields that take exactly the JSON types the schema promises.

DRF's stock fields coerce: ``{"name": 0}`` becomes ``"0"``, ``{"start": 0}`` becomes
``False``, ``{"pipeline_id": 5}`` a UUID. A typed client never sends those, and accepting
them makes the server looser than its schema. Every request serializer uses these fields: schema
generation (``lib.schema.AutoSchema``) warns about any writable field that is not one of them, and
``tests/project/test_openapi.py`` fails on warnings, so a new endpoint cannot slip. Form bodies
(multipart) carry only text, so booleans and JSON objects also accept their text form there.
"""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.http import QueryDict
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pipeline_project.lib import json_input, ssrf

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _in_form(field) -> bool:
    root = field.root
    return isinstance(getattr(root, "initial_data", None), QueryDict)


class _StrictType:
    """Refuses input that is not one of ``accepted_types`` (bool is never an int here)."""

    accepted_types: tuple[type, ...] = (str,)
    type_name = "a string"

    def to_internal_value(self, data):
        if isinstance(data, bool) and bool not in self.accepted_types or not isinstance(data, self.accepted_types):
            raise serializers.ValidationError(f"Must be {self.type_name}.", code="invalid")
        return super().to_internal_value(data)


class CharField(_StrictType, serializers.CharField):
    """Text as sent: not trimmed, so what the schema accepts is what is stored."""

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


class FullMatchValidator(RegexValidator):
    """The whole value must match: Python's ``$`` also matches before a final line break,
    which the schema's readers (ECMA-262 and others) do not allow."""

    def __call__(self, value):
        if not self.regex.fullmatch(str(value)):
            raise DjangoValidationError(self.message, code=self.code)


class RegexField(_StrictType, serializers.RegexField):
    def __init__(self, regex, **kwargs):
        super().__init__(regex, **kwargs)
        self.validators = [FullMatchValidator(v.regex) if type(v) is RegexValidator else v for v in self.validators]


def public_url(value: str) -> str:
    """A validator: the URL may only reach the public internet (``lib.ssrf``)."""
    try:
        ssrf.check_url(value)
    except ssrf.UnsafeURL as exc:
        raise serializers.ValidationError(str(exc)) from None
    return value


class _URLValidator(URLValidator):
    """Django's URL check without its limit of 253 characters on the host name: the schema's
    ``uri`` format sets none. Such a host never resolves, so the SSRF guard refuses it where the
    URL is used (a fetch, a delivery)."""

    def __call__(self, value):
        try:
            super().__call__(value)
        except DjangoValidationError:
            host = urlsplit(value).hostname or ""
            if not (len(host) > 253 and value.split("://")[0].lower() in self.schemes and self.regex.search(value)):
                raise


class URLField(_StrictType, serializers.URLField):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [_URLValidator() if isinstance(v, URLValidator) else v for v in self.validators]


class NameValidator(RegexValidator):
    """Not blank, no leading or trailing space, tab or line break.

    Checked in code: regular-expression dialects disagree on ``\\s`` and ``$``. The pattern is what
    the schema publishes (drf-spectacular reads it from this validator), written so that every
    dialect reads it the same way."""

    BLANKS = " \t\r\n"

    def __init__(self):
        super().__init__(r"^[^ \t\r\n]([\s\S]*[^ \t\r\n])?$", "Must not be blank or start or end with a blank.")

    def __call__(self, value):
        if not value or value.strip(self.BLANKS) != value:
            raise DjangoValidationError(self.message, code=self.code)


class NameField(CharField):
    """A name (see ``NameValidator``), at most ``max_length``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(NameValidator())


class EmailField(_StrictType, serializers.EmailField):
    pass


class UUIDField(_StrictType, serializers.UUIDField):
    type_name = "a UUID string"


class DateTimeField(_StrictType, serializers.DateTimeField):
    """An ISO 8601 date-time with its offset (``Z`` or ``+02:00``), as the schema's ``date-time`` says."""

    type_name = "a date-time string (ISO 8601)"

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        parsed = parse_datetime(data)  # data is a string here (_StrictType) that DRF could read
        if parsed is not None and parsed.tzinfo is None:
            raise serializers.ValidationError("Must include a time-zone offset, e.g. Z or +02:00.", code="invalid")
        return value


class ChoiceField(_StrictType, serializers.ChoiceField):
    pass


class IntegerField(_StrictType, serializers.IntegerField):
    """An integer; bounded to 64 bits unless narrower bounds are given."""

    accepted_types = (int,)
    type_name = "an integer"

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", INT64_MIN)
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(**kwargs)


class BooleanField(serializers.BooleanField):
    """``true``/``false``; in a form, the text ``true``/``false`` (also ``1``/``0``)."""

    FORM_VALUES = {"true": True, "false": False, "1": True, "0": False}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, str) and _in_form(self) and data.lower() in self.FORM_VALUES:
            return self.FORM_VALUES[data.lower()]
        raise serializers.ValidationError("Must be a boolean.", code="invalid")


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """A JSON object of at most ``max_bytes`` as JSON; in a form, JSON text of one."""

    def __init__(self, *, max_bytes: int | None = None, **kwargs):
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and _in_form(self):
            try:
                data = json_input.loads(data)
            except ValueError as exc:
                raise serializers.ValidationError(f"Must be JSON text of an object: {exc}") from None
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.", code="invalid")
        try:
            json_input.check_json(data)
        except json_input.UnsafeJSON as exc:
            raise serializers.ValidationError(str(exc)) from None
        if self.max_bytes is not None and len(json_input.dumps(data)) > self.max_bytes:
            raise serializers.ValidationError(f"Must be at most {self.max_bytes // 1024} KB as JSON.")
        return data


class ModelSerializer(serializers.ModelSerializer):
    # Model fields become the strict fields above. (A comment, not a docstring: drf-spectacular
    # would publish a docstring as every subclass's description.)

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: CharField,
        models.TextField: CharField,
        models.SlugField: CharField,
        models.EmailField: EmailField,
        models.URLField: URLField,
        models.UUIDField: UUIDField,
        models.DateTimeField: DateTimeField,
        models.BooleanField: BooleanField,
        models.IntegerField: IntegerField,
        models.BigIntegerField: IntegerField,
        models.PositiveIntegerField: IntegerField,
        models.PositiveSmallIntegerField: IntegerField,
        models.SmallIntegerField: IntegerField,
    }
    serializer_choice_field = ChoiceField


def loose_fields(serializer: serializers.Serializer, prefix: str = "") -> list[str]:
    """The writable fields of ``serializer`` (nested ones included) that are not strict:
    ``lib.schema.AutoSchema`` warns about each, and the schema test fails on warnings."""
    loose = []
    for name, field in serializer.fields.items():
        while isinstance(field, serializers.ListField | serializers.ListSerializer):
            field = field.child
        if field.read_only:
            continue
        if isinstance(field, serializers.Serializer):
            loose += loose_fields(field, f"{prefix}{name}.")
        elif not isinstance(field, _StrictType | BooleanField | JSONObjectField | serializers.FileField):
            loose.append(f"{prefix}{name}")
    return loose
