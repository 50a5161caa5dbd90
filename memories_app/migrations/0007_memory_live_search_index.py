import memories_app.vectors
from django.db import migrations


class Migration(migrations.Migration):
    """PostgreSQL: the memories' full-text GIN index becomes (account_id, search_vector)
    over live memories only (btree_gin), replacing the index on search_vector alone; the
    table's fillfactor becomes 85 so that updates after reads are HOT (see
    memories_app.vectors.PG_LIVE_TEXT_FORWARD). SQLite: nothing (FTS5 is unchanged)."""

    dependencies = [
        ('memories_app', '0006_memory_extract_entities'),
    ]

    operations = [
        migrations.RunPython(memories_app.vectors.create_live_text_index,
                             memories_app.vectors.drop_live_text_index),
    ]
