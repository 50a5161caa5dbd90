"""Routes of the entities app, included by the root urls under ``v1/`` before the memories
app, so that its literal paths under ``memories/`` win over ``memories/{id}``."""

from memoryrelay_site.routers import Router

router = Router()

urlpatterns = router.urls
