from django.apps import AppConfig


class EntitiesAppConfig(AppConfig):
    name = "entities_app"
    verbose_name = "Entities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from memories_app.signals import content_changed, memories_written

        from . import pipeline, tasks  # noqa: F401  (tasks: registers the extraction sweeper)

        memories_written.connect(pipeline.on_memories_written,
                                 dispatch_uid="entities_app.extract_written_memories")
        content_changed.connect(pipeline.on_content_changed,
                                dispatch_uid="entities_app.extraction_stale_on_update")
        pipeline.connect_request_signals()
