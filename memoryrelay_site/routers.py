"""The one router every app's urls use."""

from rest_framework.routers import SimpleRouter


class Router(SimpleRouter):
    """Routes without a trailing slash that also accept one (no redirect drops a POST body)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
