"""Every saved entry gets fresh vectors once its transaction commits; deletes cascade."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from faq import indexing
from faq.models import FAQEntry


@receiver(post_save, sender=FAQEntry)
def reembed_saved_entry(sender, instance: FAQEntry, raw: bool = False, **kwargs) -> None:
    if raw:  # loaddata: the fixture's own rows; `manage.py reembed` catches up
        return
    indexing.refresh_later([instance.pk])
