"""ShopHours.version, raised by the database on every change to a shop's hours or to any of their
rows (weekly ranges, exceptions, holiday rules), whoever writes them: the admin's forms, an
import's bulk writes, a script. Each change takes the next value of one sequence, so a version
is never seen twice, not even by hours deleted and made again. Each process caches a shop's Schedule by it (faq/hours/models.py,
`shop_schedule`), so an owner's edit reaches the chat in every process at its next read of the
version, and the four queries that build a Schedule run only after an edit."""

from django.db import migrations, models

BUMP_ON_ROWS = """
CREATE SEQUENCE faq_hours_version;

CREATE FUNCTION faq_hours_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE faq_shophours SET version = 0 WHERE shop_id = OLD.hours_id;
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.hours_id <> OLD.hours_id) THEN
        UPDATE faq_shophours SET version = 0 WHERE shop_id = NEW.hours_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION faq_hours_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := nextval('faq_hours_version');
    RETURN NEW;
END $$;

CREATE TRIGGER faq_shophours_version BEFORE INSERT OR UPDATE ON faq_shophours
    FOR EACH ROW EXECUTE FUNCTION faq_hours_changed();
CREATE TRIGGER faq_weeklyrange_version AFTER INSERT OR UPDATE OR DELETE ON faq_weeklyrange
    FOR EACH ROW EXECUTE FUNCTION faq_hours_rows_changed();
CREATE TRIGGER faq_specialday_version AFTER INSERT OR UPDATE OR DELETE ON faq_specialday
    FOR EACH ROW EXECUTE FUNCTION faq_hours_rows_changed();
CREATE TRIGGER faq_holidayrule_version AFTER INSERT OR UPDATE OR DELETE ON faq_holidayrule
    FOR EACH ROW EXECUTE FUNCTION faq_hours_rows_changed();
"""

DROP = """
DROP TRIGGER faq_holidayrule_version ON faq_holidayrule;
DROP TRIGGER faq_specialday_version ON faq_specialday;
DROP TRIGGER faq_weeklyrange_version ON faq_weeklyrange;
DROP TRIGGER faq_shophours_version ON faq_shophours;
DROP FUNCTION faq_hours_changed();
DROP FUNCTION faq_hours_rows_changed();
DROP SEQUENCE faq_hours_version;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("faq", "0014_searchindex_per_model"),
    ]

    operations = [
        migrations.AddField(
            model_name="shophours",
            name="version",
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.RunSQL(BUMP_ON_ROWS, DROP),
    ]
