"""Two partial indexes the entity graph's reads use to tell live rows without reading them.

- memories (id) INCLUDE (created_at) WHERE deleted_at IS NULL: an entity's live memories
  (memory_count) and the newest memory two entities share (relationships) are found by
  joining its links to this index alone. Through the table, an entity in 13,000 memories
  took 260 ms for its memory_count (one heap visit per memory, measured with 100,000
  memories); through the index, an index-only scan.
- entities (id) INCLUDE (account_id) WHERE deleted_at IS NULL: the same for the neighbours
  read from the co-occurrence table (relationship_count, a relationships page's total).

On SQLite the same indexes without INCLUDE (the columns are in the key).
"""

from django.db import migrations

INDEXES = {
    "postgresql": [
        "CREATE INDEX IF NOT EXISTS graph_memory_live ON {memory} (id) INCLUDE (created_at) "
        "WHERE deleted_at IS NULL",
        "CREATE INDEX IF NOT EXISTS graph_entity_live ON {entity} (id) INCLUDE (account_id) "
        "WHERE deleted_at IS NULL",
    ],
    "sqlite": [
        "CREATE INDEX IF NOT EXISTS graph_memory_live ON {memory} (id, created_at) "
        "WHERE deleted_at IS NULL",
        "CREATE INDEX IF NOT EXISTS graph_entity_live ON {entity} (id, account_id) "
        "WHERE deleted_at IS NULL",
    ],
}


def _names(apps):
    return {"memory": apps.get_model("memories_app", "Memory")._meta.db_table,
            "entity": apps.get_model("entities_app", "Entity")._meta.db_table}


def create(apps, schema_editor):
    for statement in INDEXES.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement.format(**_names(apps)), params=None)


def drop(apps, schema_editor):
    for name in ("graph_memory_live", "graph_entity_live"):
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}", params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("entities_app", "0003_memory_extraction"),
        ("memories_app", "0006_memory_extract_entities"),
    ]

    operations = [migrations.RunPython(create, drop)]
