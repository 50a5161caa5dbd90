from django.apps import AppConfig


class MemoryRelaySiteConfig(AppConfig):
    name = "memoryrelay_site"
    verbose_name = "Accounts and API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import openapi  # noqa: F401  (registers the authentication scheme)
        from .db import keep_sqlite_private

        connection_created.connect(keep_sqlite_private, dispatch_uid="keep_sqlite_private")
