from django.apps import AppConfig


class MemoryRelaySiteConfig(AppConfig):
    name = "memoryrelay_site"
    verbose_name = "Accounts and API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import openapi  # noqa: F401  (registers the authentication scheme)
        from .db import set_up_sqlite_connection

        connection_created.connect(set_up_sqlite_connection,
                                   dispatch_uid="set_up_sqlite_connection")
