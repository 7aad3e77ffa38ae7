from django.apps import AppConfig


class HomeConfig(AppConfig):
    default_auto_field = "django.db.models.AutoField"
    name = "home"
