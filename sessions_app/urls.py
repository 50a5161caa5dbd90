"""Routes of the sessions app, included by the root urls under ``v1/``. Sessions are routed
by the memories app, whose subclass of the session viewset embeds memories."""

from memoryrelay_site.routers import Router

from .views import AgentViewSet, ProjectViewSet

router = Router()
router.register("agents", AgentViewSet, basename="agent")
router.register("projects", ProjectViewSet, basename="project")

urlpatterns = router.urls
