"""A shop's search index per embedding model (faq/embedding.py's shop_models: an English shop's
entries are embedded by two models). The stored indexes are a cache of what faq/search_index.py
builds from the vectors: dropped here, and built again by the first search of each shop."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("faq", "0013_owner_order_and_defaults"),
    ]

    operations = [
        migrations.DeleteModel(name="SearchIndex"),
        migrations.CreateModel(
            name="SearchIndex",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("model_name", models.CharField(max_length=200)),
                ("vector_count", models.PositiveIntegerField()),
                ("vector_id_sum", models.BigIntegerField()),
                ("data", models.BinaryField()),
                ("built", models.DateTimeField(auto_now=True)),
                (
                    "shop",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="search_indexes",
                        to="faq.shop",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("shop", "model_name"), name="faq_searchindex_shop_model"
                    )
                ],
            },
        ),
    ]
