"""Routes of the entities app, included by the root urls under ``v1/`` before the memories
app, so that its literal paths under ``memories/`` win over ``memories/{id}``."""

from memoryrelay_site.routers import Router

from .views import EntityViewSet

router = Router()
# entities/links (a literal route) comes before entities/{id}.
router.register("entities", EntityViewSet, basename="entity")

urlpatterns = router.urls
