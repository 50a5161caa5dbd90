from django.apps import AppConfig


class MemoryRelaySiteConfig(AppConfig):
    name = "memoryrelay_site"
    verbose_name = "Accounts and API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import openapi  # noqa: F401  (registers the authentication scheme)
