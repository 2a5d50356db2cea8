from django.apps import AppConfig


class FaqConfig(AppConfig):
    name = "faq"
    verbose_name = "FAQ knowledge base"

    def ready(self) -> None:
        from faq import signals  # noqa: F401  (connects the re-embedding handlers)
