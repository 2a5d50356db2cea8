"""Every saved entry gets fresh vectors once its transaction commits; deletes cascade, and the
shop's search index is rebuilt after them."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from faq import indexing
from faq.models import FAQEntry

# The fields embedding_texts() reads: a save that touches none of them cannot change a vector.
TEXT_FIELDS = frozenset({"question", "answer", "alternatives"})


@receiver(post_save, sender=FAQEntry)
def reembed_saved_entry(sender, instance: FAQEntry, raw: bool = False, **kwargs) -> None:
    if raw:  # loaddata: the fixture's own rows; `manage.py reembed` catches up
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and not TEXT_FIELDS & set(update_fields):
        return  # e.g. save(update_fields=["published"])
    indexing.refresh_later([instance.pk])


@receiver(post_delete, sender=FAQEntry)
def reindex_after_delete(sender, instance: FAQEntry, **kwargs) -> None:
    # Deleting a whole shop deletes its SearchIndex too; rebuilding finds no shop rows: harmless.
    indexing.reindex_later([instance.shop_id])
