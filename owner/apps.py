from django.apps import AppConfig


class OwnerConfig(AppConfig):
    name = "owner"
    verbose_name = "Owner pages"
