"""Migration operations that need more care than Django's own."""

from django.core.management.base import CommandError
from django.db import migrations
from django.db.utils import DatabaseError


class MissingPgvector(CommandError):
    """A CommandError, so `migrate` prints the message alone instead of a traceback."""


class VectorExtension(migrations.RunSQL):
    """CREATE EXTENSION vector, failing with a message a host can act on when pgvector is absent."""

    MESSAGE = (
        "\n\nThis PostgreSQL server has no pgvector extension, which ShopBot needs to store FAQ "
        "vectors.\nEither install pgvector on that server (e.g. Debian/Ubuntu: apt-get install "
        "postgresql-<version>-pgvector; or use the pgvector/pgvector Docker image) and run migrate "
        "again,\nor unset DATABASE_URL to use the embedded PostgreSQL that ships with pgvector.\n"
    )

    def __init__(self):
        super().__init__(
            "CREATE EXTENSION IF NOT EXISTS vector", reverse_sql=migrations.RunSQL.noop
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        available = self._available(schema_editor)
        if not available:
            raise MissingPgvector(self.MESSAGE)
        super().database_forwards(app_label, schema_editor, from_state, to_state)

    @staticmethod
    def _available(schema_editor) -> bool:
        try:
            with schema_editor.connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
                return cursor.fetchone() is not None
        except DatabaseError:
            return False
