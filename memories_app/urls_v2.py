"""Routes of ``/v2`` (the hosted service's asynchronous API), included by the root urls
under ``v2/``."""

from django.urls import re_path

from .context_api import ContextBundleView
from .views_v2 import MemoryAsyncView, MemoryStatusView

urlpatterns = [
    re_path(r"^memories/?$", MemoryAsyncView.as_view(), name="memory-async"),
    re_path(r"^memories/(?P<memory_id>[^/\x00]+)/status/?$", MemoryStatusView.as_view(),
            name="memory-status"),
    # context bundles: the MCP server's context_build, OpenClaw's buildContextV2
    re_path(r"^context/build/?$", ContextBundleView.as_view(), name="context-build"),
    re_path(r"^context/?$", ContextBundleView.as_view(), name="context"),
]
