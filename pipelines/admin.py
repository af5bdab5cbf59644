"""Pipelines in the admin: staff create them and edit their config, validated exactly as the API
validates it (the API's serializer: errors name the bad field's path, as the API's 400 does) and
saved through the same services, so a new config makes a new version, ``pipeline.created`` /
``pipeline.updated`` are announced (webhooks) and the staff action is audited. Versions are
read-only history. Nothing deletes a pipeline here (jobs refer to it): deactivate it, or use the API.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.utils.html import format_html, format_html_join

from audit.services import audit_staff_action
from pipeline_project.lib import json_input
from pipeline_project.lib.errors import ApplicationError
from pipelines.api.serializers import CONFIG_HELP, PipelineSerializer
from pipelines.models import Pipeline, PipelineVersion
from pipelines.services import pipeline_create, pipeline_update, pipeline_update_check
from pipelines.stages import REGISTRY
from pipelines.validation import normalized

EDITABLE = ["name", "description", "config", "is_active"]


def pretty(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def json_block(value):
    return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', pretty(value))


class ConfigJSONField(forms.JSONField):
    """JSON text in a textarea, shown pretty-printed, read as the API reads JSON (no NaN, no NUL,
    bounded nesting)."""

    def to_python(self, value):
        if self.disabled or value in self.empty_values:
            return super().to_python(value)
        if isinstance(value, list | dict | int | float | forms.fields.JSONString):
            return value
        try:
            return json_input.loads(value)
        except ValueError as exc:
            raise forms.ValidationError(f"Enter valid JSON: {exc}", code="invalid") from None

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return pretty(value)


class PipelineForm(forms.ModelForm):
    config = ConfigJSONField(
        widget=forms.Textarea(attrs={"rows": 18, "cols": 90, "spellcheck": "false", "style": "font-family:monospace"}),
        help_text=f"{CONFIG_HELP} Every stage and its parameters: the stage reference below.",
    )

    class Meta:
        model = Pipeline
        fields = ["organization", *EDITABLE]

    def clean(self):
        cleaned = super().clean()
        data = {field: cleaned[field] for field in EDITABLE if field in cleaned}
        serializer = PipelineSerializer(data=data, partial=True)  # required fields are the form's to check
        if not serializer.is_valid():
            self._add_api_errors(serializer.errors)
            return cleaned
        cleaned.update(serializer.validated_data)
        if not self.instance._state.adding and not self.errors:
            changes = {field: cleaned[field] for field in self.changed_data if field in EDITABLE and field in cleaned}
            try:
                pipeline_update_check(pipeline=Pipeline.objects.get(pk=self.instance.pk), changes=changes)
            except ApplicationError as exc:
                self._add_api_errors(exc.details or {None: [exc.message]})
        return cleaned

    def _add_api_errors(self, errors: dict) -> None:
        """The API's errors on the form's fields; a config's by path (``stages[1].params.max_chars: ...``)."""
        for field, problems in errors.items():
            if isinstance(problems, dict):  # the config's, by path
                for where, messages_ in problems.items():
                    where = where.removeprefix("config").removeprefix(".")
                    for message in messages_:
                        self.add_error("config", f"{where}: {message}" if where else str(message))
            else:
                self.add_error(field if field in self.fields else None, [str(p) for p in problems])


class PipelineVersionInline(admin.TabularInline):
    model = PipelineVersion
    extra = 0
    can_delete = False
    fields = ["version", "config_json", "created_by", "created_at"]
    readonly_fields = fields
    ordering = ["-version"]
    SHOWN = 20  # the latest versions, on the pipeline's page (GET /pipelines/{id}/versions has them all)
    verbose_name_plural = f"version history (the latest {SHOWN})"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description="config")
    def config_json(self, version):
        return json_block(version.config)


@admin.register(Pipeline)
class PipelineAdmin(admin.ModelAdmin):
    form = PipelineForm
    list_display = ["name", "organization", "version", "is_active", "stage_names", "updated_at"]
    list_filter = ["is_active", "organization"]
    search_fields = ["=id", "name", "organization__name", "organization__slug"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]
    inlines = [PipelineVersionInline]
    change_readonly = ["organization", "version", "normalized_config", "created_by", "created_at", "updated_at"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            main = ["organization", *EDITABLE]
            info = []
        else:
            main = ["organization", "name", "description", "config", "is_active"]
            info = [("Current version", {"fields": ["version", "normalized_config", "created_by", "created_at",
                                                    "updated_at"]})]  # fmt: skip
        reference = ("Stage reference", {"classes": ["collapse"], "fields": ["stage_reference"]})
        return [(None, {"fields": main}), *info, reference]

    def get_readonly_fields(self, request, obj=None):
        return ["stage_reference"] if obj is None else [*self.change_readonly, "stage_reference"]

    def has_delete_permission(self, request, obj=None):
        return False  # jobs refer to pipelines: deactivate one (is_active) instead

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, PipelineVersionInline) and obj is not None and obj.pk:
            kwargs["queryset"] = inline.get_queryset(request).filter(version__gt=obj.version - inline.SHOWN)
        return kwargs

    @admin.display(description="stages")
    def stage_names(self, pipeline):
        stages = pipeline.config.get("stages") if isinstance(pipeline.config, dict) else None
        return " → ".join(str(s.get("name")) for s in stages if isinstance(s, dict)) if stages else "-"

    @admin.display(description="as jobs run it")
    def normalized_config(self, pipeline):
        try:
            return json_block(normalized(pipeline.config))
        except (KeyError, TypeError):  # a config stored before today's validation
            return "-"

    @admin.display(description="stages")
    def stage_reference(self, pipeline=None):
        rows = []
        for stage in sorted(REGISTRY.values(), key=lambda s: s.name):
            params = stage.params_schema.get("properties", {})
            described = "; ".join(_describe(name, spec) for name, spec in params.items()) or "none"
            rows.append((stage.name, stage.description, ", ".join(stage.needs) or "-", described))
        body = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><thead><tr><th>stage</th><th>what it does</th><th>needs</th><th>params</th>"
                           "</tr></thead><tbody>{}</tbody></table>", body)  # fmt: skip

    def save_model(self, request, obj, form, change):
        data = {field: form.cleaned_data[field] for field in EDITABLE if field in form.cleaned_data}
        with transaction.atomic():
            if change:
                changes = {field: data[field] for field in form.changed_data if field in EDITABLE}
                if not changes:
                    return
                version = obj.version
                pipeline = pipeline_update(pipeline=obj, changes=changes, updated_by=request.user)
                audit_staff_action(request=request, action="admin.pipelines.update", obj=pipeline,
                                   details={"changed": sorted(changes), "version": pipeline.version,
                                            "previous_version": version})  # fmt: skip
            else:
                pipeline = pipeline_create(organization=form.cleaned_data["organization"], created_by=request.user,
                                           **data)  # fmt: skip
                audit_staff_action(request=request, action="admin.pipelines.create", obj=pipeline,
                                   details={"name": pipeline.name, "version": pipeline.version})  # fmt: skip
        for field in Pipeline._meta.concrete_fields:  # the admin goes on with ``obj``: make it the saved row
            setattr(obj, field.attname, getattr(pipeline, field.attname))
        obj._state.adding = False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """A conflict the form could not see (another change committed meanwhile) rolls the save back
        and says why, instead of an error page."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, f"Not saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


def _describe(name: str, spec: dict) -> str:
    parts = [spec.get("type", "")]
    if "minimum" in spec or "maximum" in spec:
        parts.append(f"{spec.get('minimum', '')}..{spec.get('maximum', '')}")
    if "enum" in spec:
        parts.append("|".join(map(str, spec["enum"])))
    if "default" in spec:
        parts.append(f"default {spec['default']}")
    return f"{name} ({', '.join(str(p) for p in parts if p != '')})"
