from django.apps import AppConfig


class KnowledgeAppConfig(AppConfig):
    name = "knowledge_app"
    verbose_name = "Decisions and patterns"
    default_auto_field = "django.db.models.BigAutoField"
