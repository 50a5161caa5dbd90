from django.apps import AppConfig


class EntitiesAppConfig(AppConfig):
    name = "entities_app"
    verbose_name = "Entities"
    default_auto_field = "django.db.models.BigAutoField"
