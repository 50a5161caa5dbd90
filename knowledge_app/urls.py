"""Decision and pattern routes, and the project views composed here (their literal paths
are included before the projects app's ``projects/{slug}``)."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from .views import DecisionViewSet, PatternViewSet, ProjectKnowledgeViewSet


class Router(SimpleRouter):
    """Routes without a trailing slash that also accept one (no redirect drops a POST body)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
router.register("decisions", DecisionViewSet, basename="decision")
router.register("patterns", PatternViewSet, basename="pattern")
# Only projects/impact-analysis, projects/shared-patterns and projects/{slug}/context.
router.register("projects", ProjectKnowledgeViewSet, basename="project-knowledge")

urlpatterns = [
    path("", include(router.urls)),
]
