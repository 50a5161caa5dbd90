"""On PostgreSQL every co-occurrence trigger takes its rows' locks in one order, that of the
primary key (source_id, target_id).

The triggers of 0002 and 0005 counted pairs down (UPDATE ... FROM, then DELETE ... USING)
and up (INSERT ... ON CONFLICT) in whatever order the plan met them: that of the memory's
links, or of the table's pages. Two transactions deleting memories that share entities each
locked some of the shared pairs and waited for the other's: a deadlock, one of them a 503.
Now a removal first locks its rows (SELECT ... ORDER BY source_id, target_id FOR UPDATE)
and an addition inserts them in that order, so of two transactions sharing pairs the second
waits at the first pair for the first to commit.

A memory's trigger stays per row: a statement soft-deleting many memories (a session's, an
agent's) locks each memory's pairs in order, one memory after the other.

SQLite has one writer at a time: its triggers are unchanged.
"""

import importlib

from django.db import migrations

base = importlib.import_module("entities_app.migrations.0002_cooccurrence")
latest = importlib.import_module("entities_app.migrations.0005_cooccurrence_latest")


def lock(pairs: str) -> str:
    """Locks the existing rows of ``pairs`` in key order (the UPDATE and DELETE after it
    then find them held)."""
    return f"""
    PERFORM 1 FROM {{cooc}} c WHERE (c.source_id, c.target_id) IN (
        SELECT p.source_id, p.target_id FROM ({pairs}) p)
     ORDER BY c.source_id, c.target_id FOR UPDATE OF c;"""


def add(pairs: str) -> str:
    """0005's, the rows inserted (or found and updated) in key order."""
    return f"""
    INSERT INTO {{cooc}} (account_id, source_id, target_id, weight, last_memory_id, last_at)
    SELECT p.account_id, p.source_id, p.target_id, 1, p.memory_id, p.at FROM ({pairs}) p
     ORDER BY p.source_id, p.target_id
    ON CONFLICT (source_id, target_id) DO UPDATE SET weight = {{cooc}}.weight + 1,
        {latest.keep_newest("{cooc}")};"""


def pg_add(changed: str) -> str:
    """0005's, the rows inserted (or found and updated) in key order."""
    counted = latest.PG_COUNTED.replace("{changed}", changed)
    return f"""
    INSERT INTO {{cooc}} AS c (account_id, source_id, target_id, weight, last_memory_id,
                               last_at)
    SELECT account_id, source_id, target_id, n, last_memory_id, last_at FROM ({counted}) p
     ORDER BY source_id, target_id
    ON CONFLICT (source_id, target_id) DO UPDATE SET weight = c.weight + EXCLUDED.weight,
        {latest.keep_newest("c")};"""


def pg_remove(changed: str) -> str:
    pairs = base.pg_link_pairs(changed)
    return lock(pairs) + base.pg_remove(pairs)


MEMORY_GONE = base.MEMORY_PAIRS.replace("{row}", "OLD")

POSTGRES = [
    """CREATE OR REPLACE FUNCTION {cooc}_link_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN""" + base.PG_LOCK.replace("{changed}", "new_links") + pg_add("new_links") + """
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION {cooc}_link_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN""" + base.PG_LOCK.replace("{changed}", "old_links") + pg_remove("old_links") + """
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
    + pg_remove(latest.MOVED_OLD) + pg_add(latest.MOVED_NEW) + """
        RETURN NULL;
    END $$""",
    """CREATE OR REPLACE FUNCTION {cooc}_memory() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.deleted_at IS NULL THEN
            """ + add(latest.MEMORY_PAIRS.replace("{row}", "NEW")) + """
        ELSE
            """ + lock(MEMORY_GONE) + base.remove(MEMORY_GONE, "postgresql") + """
        END IF;
        RETURN NULL;
    END $$""",
]

# The functions as 0005 left them (0002's link_delete, which 0005 kept).
PREVIOUS = [s for s in latest.POSTGRES if s.startswith("CREATE OR REPLACE FUNCTION")] + [
    s.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1) for s in base.POSTGRES
    if s.startswith("CREATE FUNCTION {cooc}_link_delete()")]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        base._run(schema_editor, POSTGRES, base._names(apps))


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        base._run(schema_editor, PREVIOUS, base._names(apps))


class Migration(migrations.Migration):

    dependencies = [("entities_app", "0006_extraction_keys")]

    operations = [migrations.RunPython(forward, backward)]
