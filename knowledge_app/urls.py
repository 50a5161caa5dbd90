"""Routes of the decisions and patterns app, included by the root urls under ``v1/``
before the other apps, so that its literal paths under ``projects/`` (impact-analysis,
shared-patterns, {slug}/context) win over the projects app's ``projects/{slug}``."""

from memoryrelay_site.routers import Router

from .views import DecisionViewSet, PatternViewSet, ProjectKnowledgeViewSet

router = Router()
router.register("decisions", DecisionViewSet, basename="decision")
router.register("patterns", PatternViewSet, basename="pattern")
# Only projects/impact-analysis, projects/shared-patterns and projects/{slug}/context.
router.register("projects", ProjectKnowledgeViewSet, basename="project-knowledge")

urlpatterns = router.urls
