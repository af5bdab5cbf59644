from rest_framework.routers import SimpleRouter

from pipelines.api import views

router = SimpleRouter(trailing_slash=False)
router.register("pipelines", views.PipelineViewSet, basename="pipeline")

urlpatterns = router.urls
