from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts import roles
from pipeline_project.lib.schema import errors
from pipelines import selectors, services
from pipelines.api.serializers import (
    PipelineSerializer,
    PipelineVersionSerializer,
    StageSerializer,
    ValidateResponseSerializer,
    ValidateSerializer,
    validated_response,
)
from pipelines.models import Pipeline
from pipelines.stages import REGISTRY

EXAMPLE = {
    "name": "contracts",
    "description": "Contracts: text and language only.",
    "config": {"stages": [{"name": "detect"}, {"name": "extract_text", "params": {"max_pages": 500}},
                          {"name": "language"}]},
}  # fmt: skip


NAME_TAKEN = "`name_taken`: another pipeline of your organization has this name."
DEFAULT_KEPT = "`default_pipeline`: the default pipeline cannot be renamed, deactivated or deleted."


@extend_schema(tags=["pipelines"])
class PipelineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Versioned pipeline configurations of the caller's organization."""

    required_permission = {
        "list": roles.PIPELINES_READ,
        "retrieve": roles.PIPELINES_READ,
        "versions": roles.PIPELINES_READ,
        "stages": roles.PIPELINES_READ,
        "validate": roles.PIPELINES_READ,
        "create": roles.PIPELINES_WRITE,
        "update": roles.PIPELINES_WRITE,
        "partial_update": roles.PIPELINES_WRITE,
        "destroy": roles.PIPELINES_WRITE,
    }
    serializer_class = PipelineSerializer
    queryset = Pipeline.objects.none()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.pipeline_queryset(principal=self.request.auth)

    @extend_schema(summary="List pipelines")
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Get a pipeline")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Create a pipeline",
        responses={201: PipelineSerializer, **errors(conflict=NAME_TAKEN)},
        examples=[OpenApiExample("Contracts", value=EXAMPLE, request_only=True)],
    )
    def create(self, request):
        serializer = PipelineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pipeline = services.pipeline_create(
            organization=request.auth.organization, created_by=request.user, **serializer.validated_data
        )
        return Response(PipelineSerializer(pipeline).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a pipeline",
        description="A new config makes a new version.",
        responses={200: PipelineSerializer, **errors(conflict=f"{NAME_TAKEN} {DEFAULT_KEPT}")},
    )
    def update(self, request, pk=None):
        return self._update(request, partial=False)

    @extend_schema(
        summary="Change a pipeline",
        description="A new config makes a new version.",
        responses={200: PipelineSerializer, **errors(conflict=f"{NAME_TAKEN} {DEFAULT_KEPT}")},
    )
    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        pipeline = self.get_object()
        serializer = PipelineSerializer(pipeline, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        pipeline = services.pipeline_update(
            pipeline=pipeline, changes=serializer.validated_data, updated_by=request.user
        )
        return Response(PipelineSerializer(pipeline).data)

    @extend_schema(
        summary="Delete a pipeline",
        description="Deletes a pipeline no job used (then 404). One that jobs used is deactivated instead and stays "
        "readable with `is_active: false`, keeping their history.",
        responses={204: None, **errors(conflict=DEFAULT_KEPT)},
    )
    def destroy(self, request, pk=None):
        services.pipeline_delete(pipeline=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="A pipeline's versions, newest first", responses=PipelineVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        page = self.paginate_queryset(selectors.pipeline_versions(pipeline=self.get_object()))
        return self.get_paginated_response(PipelineVersionSerializer(page, many=True).data)

    @extend_schema(summary="Every stage a pipeline can use", responses=StageSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None)
    def stages(self, request):
        stages = [{"name": s.name, "description": s.description, "params_schema": s.params_schema,
                   "needs": list(s.needs)} for s in sorted(REGISTRY.values(), key=lambda s: s.name)]  # fmt: skip
        return Response(StageSerializer(stages, many=True).data)

    @extend_schema(
        summary="Validate a config (dry run)",
        request=ValidateSerializer,
        responses={200: ValidateResponseSerializer},
    )
    @action(detail=False, methods=["post"])
    def validate(self, request):
        serializer = ValidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(validated_response(serializer.validated_data["config"]))
