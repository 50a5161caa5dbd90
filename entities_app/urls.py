"""Routes of the entities app, included by the root urls under ``v1/`` before the memories
app, so that its literal paths under ``memories/`` win over ``memories/{id}``."""

from django.urls import re_path

from memoryrelay_site.routers import Router

from .views import EntityViewSet
from .views_byok import (
    ExtractionKeyActivateView,
    ExtractionKeysDeactivateView,
    ExtractionKeysView,
    ExtractionKeyView,
    ExtractionSettingsView,
)
from .views_extraction import BackfillEntitiesView, ExtractEntitiesView, ExtractionStatusView
from .views_graph import EntityNeighborhoodView, EntityRelationshipsView

router = Router()
# entities/links (a literal route) comes before entities/{id}.
router.register("entities", EntityViewSet, basename="entity")

urlpatterns = [
    re_path(r"^extraction/settings/?$", ExtractionSettingsView.as_view(),
            name="extraction-settings"),
    re_path(r"^extraction/keys/?$", ExtractionKeysView.as_view(), name="extraction-keys"),
    re_path(r"^extraction/keys/deactivate-all/?$", ExtractionKeysDeactivateView.as_view(),
            name="extraction-keys-deactivate-all"),
    re_path(r"^extraction/keys/(?P<pk>[^/\x00]+)/activate/?$",
            ExtractionKeyActivateView.as_view(), name="extraction-key-activate"),
    re_path(r"^extraction/keys/(?P<pk>[^/\x00]+)/?$", ExtractionKeyView.as_view(),
            name="extraction-key"),
    re_path(r"^memories/backfill-entities/?$", BackfillEntitiesView.as_view(),
            name="memory-backfill-entities"),
    re_path(r"^memories/(?P<pk>[^/\x00]+)/extract-entities/?$", ExtractEntitiesView.as_view(),
            name="memory-extract-entities"),
    re_path(r"^memories/(?P<pk>[^/\x00]+)/extraction-status/?$",
            ExtractionStatusView.as_view(), name="memory-extraction-status"),
    re_path(r"^entities/(?P<pk>[^/\x00]+)/relationships/?$", EntityRelationshipsView.as_view(),
            name="entity-relationships"),
    re_path(r"^entities/(?P<pk>[^/\x00]+)/neighborhood/?$", EntityNeighborhoodView.as_view(),
            name="entity-neighborhood"),
    *router.urls,
]
