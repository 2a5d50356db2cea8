"""FAQ vectors carry their entry's shop, so that search's per-shop exact scan reads only that
shop's rows through an index on (shop, model_name): reaching them through their entries made
PostgreSQL scan the whole vector table and hash-join it (1 s for a 5,000-entry shop among 1,000
shops of 40 entries; `bench/bench_many_shops.py`).

The database keeps the copy true: a foreign key on the vector's (entry, shop) to the entry's
(id, shop), ON UPDATE CASCADE, so a vector cannot name another shop than its entry's, and follows
its entry if the entry moves to another shop (even by a queryset update, which sends no signal).
"""

import django.db.models.deletion
from django.db import migrations, models

FILL = """
    -- Checked now rather than at commit: the ALTER TABLE below refuses to run with deferred
    -- foreign key checks pending.
    SET CONSTRAINTS ALL IMMEDIATE;
    UPDATE faq_faqvector v SET shop_id = e.shop_id FROM faq_faqentry e WHERE e.id = v.entry_id;
"""

ENTRY_AND_SHOP_FK = """
    ALTER TABLE faq_faqvector ADD CONSTRAINT faq_vector_entry_shop
        FOREIGN KEY (entry_id, shop_id) REFERENCES faq_faqentry (id, shop_id)
        ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED
"""


class Migration(migrations.Migration):
    dependencies = [
        ("faq", "0008_shop_handoff_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="faqvector",
            name="shop",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="faq.shop",
            ),
        ),
        migrations.RunSQL(FILL, reverse_sql=migrations.RunSQL.noop),
        migrations.AlterField(
            model_name="faqvector",
            name="shop",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="faq.shop",
            ),
        ),
        migrations.AddIndex(
            model_name="faqvector",
            index=models.Index(fields=["shop", "model_name"], name="faq_vector_shop_model"),
        ),
        migrations.AddConstraint(
            model_name="faqentry",
            constraint=models.UniqueConstraint(fields=("id", "shop"), name="faq_entry_id_shop"),
        ),
        migrations.RunSQL(
            ENTRY_AND_SHOP_FK,
            reverse_sql="ALTER TABLE faq_faqvector DROP CONSTRAINT faq_vector_entry_shop",
        ),
    ]
