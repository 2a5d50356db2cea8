"""Every saved entry gets fresh vectors once its transaction commits; deletes cascade, and the
shop's search index is rebuilt after them. A shop whose language changes to one embedded by
another model (faq/embedding.py's shop_models) gets its entries re-embedded."""

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from faq import embedding, indexing
from faq.models import FAQEntry, Shop

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


@receiver(pre_save, sender=Shop)
def note_models_before(sender, instance: Shop, raw: bool = False, **kwargs) -> None:
    update_fields = kwargs.get("update_fields")
    if raw or not instance.pk or (update_fields is not None and "language" not in update_fields):
        instance._models_before = None
        return
    before = Shop.objects.filter(pk=instance.pk).values_list("language", flat=True).first()
    instance._models_before = embedding.shop_models(before) if before is not None else None


@receiver(post_save, sender=Shop)
def reembed_for_new_language(sender, instance: Shop, raw: bool = False, **kwargs) -> None:
    before = getattr(instance, "_models_before", None)
    if before is not None and before != embedding.shop_models(instance.language):
        # Until it is done, search finds no vectors of the new model: the fallback answers.
        indexing.refresh_later(instance.entries.values_list("pk", flat=True))
