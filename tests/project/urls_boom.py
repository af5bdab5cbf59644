"""The project's URLs plus views that fail unexpectedly, for the 500 error-format tests."""

from django.urls import path
from rest_framework.views import APIView

from pipeline_project.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


class Boom(APIView):
    required_permission = None

    def get(self, request):
        raise RuntimeError("boom")


def plain_boom(request):
    raise RuntimeError("boom")


urlpatterns = [*urlpatterns, path("api/v1/boom", Boom.as_view()), path("api/v1/plain-boom", plain_boom)]
