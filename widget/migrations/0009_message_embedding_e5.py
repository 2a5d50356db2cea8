"""Message.embedding now holds multilingual-e5-small vectors (owner/unanswered.py groups
unanswered questions by them): the vectors of the chat's model stored until now are cleared, and
the unanswered page embeds the questions again when it next needs them."""

from django.db import migrations


def clear_embeddings(apps, schema_editor) -> None:
    Message = apps.get_model("widget", "Message")
    Message.objects.filter(embedding__isnull=False).update(embedding=None)


class Migration(migrations.Migration):
    dependencies = [
        ("widget", "0008_message_dismissed"),
    ]

    operations = [
        migrations.RunPython(clear_embeddings, clear_embeddings),
    ]
