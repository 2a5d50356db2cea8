from django.core.management.base import BaseCommand
from django.db import transaction

from faq import indexing
from faq.demo import entry_fields, shop_fields
from faq.models import FAQEntry, Shop


class Command(BaseCommand):
    help = "Load the demo flower shop (Petal & Stem) and its FAQ. Running it again changes nothing."

    def handle(self, *args, **options) -> None:
        shop, created = load_demo_shop()
        verb = "Created" if created else "Kept"
        self.stdout.write(
            f"{verb} demo shop {shop.name!r} with {shop.entries.count()} FAQ entries."
        )


def load_demo_shop() -> tuple[Shop, bool]:
    info = shop_fields()
    with indexing.batched(), transaction.atomic():
        # Found by its marker, not its name: an owner may rename the demo, or call their own shop
        # "Petal & Stem".
        shop, created = Shop.objects.get_or_create(is_demo=True, defaults=info)
        # Entries are matched by question, so a re-run neither duplicates them nor overwrites an
        # owner's edits to the demo's answers.
        existing = set(shop.entries.values_list("question", flat=True))
        for fields in entry_fields():
            if fields["question"] not in existing:
                FAQEntry.objects.create(shop=shop, **fields)
    return shop, created
