"""Routes of the memories app, included by the root urls under ``v1/``."""

from django.db import transaction
from django.urls import re_path

from memoryrelay_site.routers import Router

from .views import EmbedView, HealthView, MemoryViewSet, SessionViewSet

router = Router()
router.register("sessions", SessionViewSet, basename="session")
router.register("memories", MemoryViewSet, basename="memory")

urlpatterns = [
    re_path(r"^health/?$", transaction.non_atomic_requests(HealthView.as_view()),
            name="health"),
    re_path(r"^embed/?$", EmbedView.as_view(), name="embed"),
    *router.urls,
]
