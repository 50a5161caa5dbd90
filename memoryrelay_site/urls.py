"""Root urls: each app's urls under ``v1/``, routed by the one router
(``memoryrelay_site.routers``). Paths have no trailing slash (one is tolerated, never
redirected), and literal routes such as ``get-or-create`` come before ``{id}``."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerView

from .keys_api import KeyViewSet
from .openapi import SchemaView
from .ratelimit import admin_login_limited
from .routers import Router
from .views import QuotaView

keys = Router()
keys.register("keys", KeyViewSet, basename="key")

urlpatterns = [
    re_path(r"^v1/quota/?$", QuotaView.as_view(), name="quota"),
    path("v1/", include(keys.urls)),
    path("v1/openapi.json", SchemaView.as_view(), name="openapi"),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi")),
    path("admin/login/", admin_login_limited(admin.site.login)),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/docs", permanent=False)),
    # Each app's routes, included by name (this package imports no app). The highest app
    # first: its literal routes under projects/ (impact-analysis, shared-patterns, {slug}/
    # context) must win over the projects app's projects/{slug}.
    path("v1/", include("knowledge_app.urls")),
    # Before the memories app: its literal routes under memories/ win over memories/{id}.
    path("v1/", include("entities_app.urls")),
    path("v1/", include("memories_app.urls")),
    path("v1/", include("sessions_app.urls")),
    path("v2/", include("memories_app.urls_v2")),
]

handler404 = "memoryrelay_site.views.not_found"
handler500 = "memoryrelay_site.views.server_error"
