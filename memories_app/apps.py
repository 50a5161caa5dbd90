from django.apps import AppConfig


class MemoriesAppConfig(AppConfig):
    name = "memories_app"
    verbose_name = "Memories"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import tasks  # noqa: F401 - registers its sweeper with the task queue
