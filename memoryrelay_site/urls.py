"""Root urls: the one router. Paths have no trailing slash (one is tolerated, never
redirected), and literal routes such as ``get-or-create`` come before ``{id}``."""

from django.contrib import admin
from django.db import transaction
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from memories_app.serializers import MemorySerializer
from memories_app.views import MemoryViewSet
from sessions_app.views import AgentViewSet, SessionViewSet

from .views import HealthView


class Router(SimpleRouter):
    """Routes without a trailing slash that also accept one (no redirect drops a POST body)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
router.register("agents", AgentViewSet, basename="agent")
router.register(
    "sessions",
    SessionViewSet.configured(memory_serializer_class=MemorySerializer),
    basename="session",
)
router.register("memories", MemoryViewSet, basename="memory")

urlpatterns = [
    path("v1/health", transaction.non_atomic_requests(HealthView.as_view()), name="health"),
    path("v1/health/", transaction.non_atomic_requests(HealthView.as_view())),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi")),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/docs", permanent=False)),
    path("v1/", include("knowledge_app.urls")),
    path("v1/", include(router.urls)),
]

handler404 = "memoryrelay_site.views.not_found"
handler500 = "memoryrelay_site.views.server_error"
