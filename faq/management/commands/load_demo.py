from django.core.management.base import BaseCommand

from faq.demo import load_shop


class Command(BaseCommand):
    help = "Load the demo flower shop (Petal & Stem) and its FAQ. Running it again changes nothing."

    def handle(self, *args, **options) -> None:
        shop, created = load_shop()
        verb = "Created" if created else "Kept"
        self.stdout.write(
            f"{verb} demo shop {shop.name!r} with {shop.entries.count()} FAQ entries."
        )
