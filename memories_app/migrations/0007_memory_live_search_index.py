import memories_app.vectors
from django.db import migrations


class Migration(migrations.Migration):
    """PostgreSQL: the memories' full-text GIN index holds live memories only (WHERE
    deleted_at IS NULL), replacing the index of every row; the table's fillfactor becomes
    85 so that updates after reads are HOT (see memories_app.vectors.PG_LIVE_TEXT_FORWARD).
    SQLite: nothing (FTS5 is unchanged)."""

    dependencies = [
        ('memories_app', '0006_memory_extract_entities'),
    ]

    operations = [
        migrations.RunPython(memories_app.vectors.create_live_text_index,
                             memories_app.vectors.drop_live_text_index),
    ]
