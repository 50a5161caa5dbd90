"""Each co-occurring pair also keeps the newest memory it was counted from, so that a
relationships page reads "the newest shared memory" from its rows instead of joining every
link of the entity (an entity in 13,000 memories: 100-150 ms).

``last_memory_id`` / ``last_at``: the newest (created_at, then id) memory among those added
to the pair since its row was created. Triggers raise it on every addition (a link
inserted or re-pointed, a memory restored) and leave it on removals, so it may name a
memory that is no longer shared; a read keeps it only if that memory is live and still
linked to both entities, which proves it the newest shared one (every live shared memory
was added, and it is the largest ever added), and otherwise looks the pair up in the links.
"""

import importlib

from django.db import migrations

base = importlib.import_module("entities_app.migrations.0002_cooccurrence")
TABLE = base.TABLE

# The pairs, with the memory each comes from.
LINK_PAIRS = """
    SELECT {row}.account_id AS account_id, {row}.entity_id AS source_id,
           o.entity_id AS target_id, m.id AS memory_id, m.created_at AS at
      FROM {link} o JOIN {memory} m ON m.id = {row}.memory_id AND m.deleted_at IS NULL
     WHERE o.memory_id = {row}.memory_id AND o.id <> {row}.id
    UNION ALL
    SELECT {row}.account_id, o.entity_id, {row}.entity_id, m.id, m.created_at
      FROM {link} o JOIN {memory} m ON m.id = {row}.memory_id AND m.deleted_at IS NULL
     WHERE o.memory_id = {row}.memory_id AND o.id <> {row}.id"""
MEMORY_PAIRS = """
    SELECT a.account_id AS account_id, a.entity_id AS source_id, b.entity_id AS target_id,
           {row}.id AS memory_id, {row}.created_at AS at
      FROM {link} a JOIN {link} b ON b.memory_id = a.memory_id AND b.id <> a.id
     WHERE a.memory_id = {row}.id"""
PG_PAIRS = """
    SELECT c.account_id, c.entity_id AS source_id, o.entity_id AS target_id,
           m.id AS memory_id, m.created_at AS at
      FROM {changed} AS c JOIN {link} o ON o.memory_id = c.memory_id
      JOIN {memory} m ON m.id = c.memory_id AND m.deleted_at IS NULL
     WHERE o.id NOT IN (SELECT x.id FROM {changed} AS x)
    UNION ALL
    SELECT c.account_id, o.entity_id, c.entity_id, m.id, m.created_at
      FROM {changed} AS c JOIN {link} o ON o.memory_id = c.memory_id
      JOIN {memory} m ON m.id = c.memory_id AND m.deleted_at IS NULL
     WHERE o.id NOT IN (SELECT x.id FROM {changed} AS x)
    UNION ALL
    SELECT a.account_id, a.entity_id, b.entity_id, m.id, m.created_at
      FROM {changed} AS a JOIN {changed} AS b ON b.memory_id = a.memory_id AND b.id <> a.id
      JOIN {memory} m ON m.id = a.memory_id AND m.deleted_at IS NULL"""
PG_COUNTED = """
    SELECT MIN(account_id) AS account_id, source_id, target_id, COUNT(*) AS n,
           (ARRAY_AGG(memory_id ORDER BY at DESC, memory_id DESC))[1] AS last_memory_id,
           MAX(at) AS last_at
      FROM (""" + PG_PAIRS + """) pairs GROUP BY source_id, target_id"""


def newer(table: str, excluded: str = "excluded") -> str:
    return (f"({table}.last_at IS NULL OR {excluded}.last_at > {table}.last_at OR "
            f"({excluded}.last_at = {table}.last_at "
            f"AND {excluded}.last_memory_id > {table}.last_memory_id))")


def keep_newest(table: str) -> str:
    return (f"last_memory_id = CASE WHEN {newer(table)} THEN excluded.last_memory_id "
            f"ELSE {table}.last_memory_id END, "
            f"last_at = CASE WHEN {newer(table)} THEN excluded.last_at ELSE {table}.last_at END")


def add(pairs: str) -> str:
    """One memory's pairs (each once): weight + 1, the newest memory kept."""
    return f"""
    INSERT INTO {{cooc}} (account_id, source_id, target_id, weight, last_memory_id, last_at)
    SELECT p.account_id, p.source_id, p.target_id, 1, p.memory_id, p.at FROM ({pairs}) p
     WHERE true
    ON CONFLICT (source_id, target_id) DO UPDATE SET weight = {{cooc}}.weight + 1,
        {keep_newest("{cooc}")};"""


def pg_add(changed: str) -> str:
    """A statement's pairs, counted: weight + n, the newest memory kept."""
    counted = PG_COUNTED.replace("{changed}", changed)
    return f"""
    INSERT INTO {{cooc}} AS c (account_id, source_id, target_id, weight, last_memory_id,
                               last_at)
    SELECT account_id, source_id, target_id, n, last_memory_id, last_at FROM ({counted}) p
    ON CONFLICT (source_id, target_id) DO UPDATE SET weight = c.weight + EXCLUDED.weight,
        {keep_newest("c")};"""


MOVED_OLD = "(SELECT o.* FROM old_links o WHERE o.id IN (" + base.MOVED + "))"
MOVED_NEW = "(SELECT n.* FROM new_links n WHERE n.id IN (" + base.MOVED + "))"

POSTGRES = [
    "ALTER TABLE {cooc} ADD COLUMN last_memory_id uuid NULL, "
    "ADD COLUMN last_at timestamp with time zone NULL",
    """CREATE OR REPLACE FUNCTION {cooc}_link_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN""" + base.PG_LOCK.replace("{changed}", "new_links") + pg_add("new_links") + """
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION {cooc}_link_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (""" + base.MOVED + """) THEN
            RETURN NULL;  -- a relationship or score changed: no pair did
        END IF;
        PERFORM 1 FROM {memory} WHERE id IN (SELECT memory_id FROM old_links
                                             UNION SELECT memory_id FROM new_links)
         ORDER BY id FOR NO KEY UPDATE;"""
    + base.pg_remove(base.pg_link_pairs(MOVED_OLD)) + pg_add(MOVED_NEW) + """
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION {cooc}_memory() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.deleted_at IS NULL THEN
            """ + add(MEMORY_PAIRS.replace("{row}", "NEW")) + """
        ELSE
            """ + base.remove(base.MEMORY_PAIRS.replace("{row}", "OLD"), "postgresql") + """
        END IF;
        RETURN NULL;
    END $$""",
]

SQLITE = [
    "ALTER TABLE {cooc} ADD COLUMN last_memory_id char(32) NULL",
    "ALTER TABLE {cooc} ADD COLUMN last_at datetime NULL",
    "DROP TRIGGER {cooc}_link_insert",
    "DROP TRIGGER {cooc}_link_update",
    "DROP TRIGGER {cooc}_memory_back",
    "CREATE TRIGGER {cooc}_link_insert AFTER INSERT ON {link} BEGIN"
    + add(LINK_PAIRS.replace("{row}", "NEW")) + " END",
    """CREATE TRIGGER {cooc}_link_update AFTER UPDATE OF entity_id, memory_id ON {link}
        WHEN OLD.entity_id IS NOT NEW.entity_id OR OLD.memory_id IS NOT NEW.memory_id BEGIN"""
    + base.remove(base.LINK_PAIRS.replace("{row}", "OLD"), "sqlite")
    + add(LINK_PAIRS.replace("{row}", "NEW")) + " END",
    """CREATE TRIGGER {cooc}_memory_back AFTER UPDATE OF deleted_at ON {memory}
        WHEN OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL BEGIN"""
    + add(MEMORY_PAIRS.replace("{row}", "NEW")) + " END",
]

FILL = """
    INSERT INTO {cooc} (account_id, source_id, target_id, weight, last_memory_id, last_at)
    SELECT account_id, source_id, target_id, weight, memory_id, at FROM (
        SELECT a.account_id, a.entity_id AS source_id, b.entity_id AS target_id,
               m.id AS memory_id, m.created_at AS at,
               COUNT(*) OVER (PARTITION BY a.entity_id, b.entity_id) AS weight,
               ROW_NUMBER() OVER (PARTITION BY a.entity_id, b.entity_id
                                  ORDER BY m.created_at DESC, m.id DESC) AS rank
          FROM {link} a JOIN {link} b ON b.memory_id = a.memory_id AND b.id <> a.id
          JOIN {memory} m ON m.id = a.memory_id AND m.deleted_at IS NULL
    ) ranked WHERE rank = 1"""


def forward(apps, schema_editor):
    names = base._names(apps)
    vendor = schema_editor.connection.vendor
    base._run(schema_editor, POSTGRES if vendor == "postgresql" else SQLITE, names)
    base._run(schema_editor, ["DELETE FROM {cooc}", FILL], names)


def backward(apps, schema_editor):
    """Back to 0002's table and triggers, filled again."""
    base.drop(apps, schema_editor)
    base.create(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [("entities_app", "0004_graph_live_indexes")]

    operations = [migrations.RunPython(forward, backward)]
