from django.core.management.base import BaseCommand
from django.db import transaction

from faq import indexing
from faq.demo import demo_data
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
    data = demo_data()
    info = dict(data["shop"])
    info["suggestions"] = "\n".join(info["suggestions"])
    with indexing.batched(), transaction.atomic():
        shop, created = Shop.objects.get_or_create(name=info.pop("name"), defaults=info)
        # Entries are matched by question, so a re-run neither duplicates them nor overwrites an
        # owner's edits to the demo's answers.
        existing = set(shop.entries.values_list("question", flat=True))
        for faq in data["faqs"]:
            if faq["question"] in existing:
                continue
            FAQEntry.objects.create(
                shop=shop,
                question=faq["question"],
                answer=faq["answer"],
                alternatives="\n".join(faq.get("alternatives", [])),
                category=faq.get("category", ""),
            )
    return shop, created
