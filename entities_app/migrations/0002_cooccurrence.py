"""The co-occurrence table the entity graph reads (entities_app.graph), kept by the database.

``entities_app_cooccurrence`` holds, for every ordered pair of entities (source, target)
linked to at least one common live memory, ``weight``: the number of such memories (both
directions are stored, so each entity's neighbours are one index range). Triggers keep it
exact on every write path, ORM or raw, single or bulk:

- a link inserted, deleted or re-pointed (entity or memory changed) adds or removes its
  pairs with the memory's other links, when that memory is live;
- a memory soft-deleted or restored (``deleted_at`` set or cleared) removes or adds the
  pairs among all its links; a live memory deleted outright removes the pairs among the
  links it still has (whichever of the memory and its links goes first, each pair is
  counted down once);
- a truncate of links or memories empties it (PostgreSQL; test flushes).
A pair whose weight falls to 0 is deleted. Soft-deleted entities keep their rows: reads
join the entity and keep the live ones, so a restore brings them back as they were.

On PostgreSQL a link trigger first locks the memory row (FOR NO KEY UPDATE, which does not
conflict with the foreign-key checks' KEY SHARE): two transactions linking entities to one
memory then take turns, and the second one sees the first one's link, so no pair is lost.
SQLite has one writer at a time.

The table is filled from the existing links here; ``entities_app.graph.cooccurrence_rebuild``
recomputes it (after a load with triggers disabled, or to check it).
"""

from django.db import migrations

TABLE = "entities_app_cooccurrence"


def _names(apps):
    link = apps.get_model("entities_app", "EntityLink")._meta.db_table
    memory = apps.get_model("memories_app", "Memory")._meta.db_table
    return {"cooc": TABLE, "link": link, "memory": memory}


# --- the pairs a row brings -----------------------------------------------------------------
# ``{row}`` is NEW or OLD; ``{live}`` joins the row's memory when it must be live.

LINK_PAIRS = """
    SELECT {row}.account_id AS account_id, {row}.entity_id AS source_id, o.entity_id AS target_id
      FROM {link} o JOIN {memory} m ON m.id = {row}.memory_id AND m.deleted_at IS NULL
     WHERE o.memory_id = {row}.memory_id AND o.id <> {row}.id
    UNION ALL
    SELECT {row}.account_id, o.entity_id, {row}.entity_id
      FROM {link} o JOIN {memory} m ON m.id = {row}.memory_id AND m.deleted_at IS NULL
     WHERE o.memory_id = {row}.memory_id AND o.id <> {row}.id"""

MEMORY_PAIRS = """
    SELECT a.account_id AS account_id, a.entity_id AS source_id, b.entity_id AS target_id
      FROM {link} a JOIN {link} b ON b.memory_id = a.memory_id AND b.id <> a.id
     WHERE a.memory_id = {row}.id"""


def add(pairs: str) -> str:
    return f"""
    INSERT INTO {{cooc}} (account_id, source_id, target_id, weight)
    SELECT p.account_id, p.source_id, p.target_id, 1 FROM ({pairs}) p WHERE true
    ON CONFLICT (source_id, target_id) DO UPDATE SET weight = {{cooc}}.weight + 1;"""


def remove(pairs: str, vendor: str) -> str:
    """Counts the pairs down, then deletes the ones at 0 (two statements: one statement may
    not update and delete the same row). Each finds its rows through the primary key."""
    if vendor == "postgresql":
        match = (f"FROM ({pairs}) p WHERE c.source_id = p.source_id "
                 "AND c.target_id = p.target_id")
        return f"""
    UPDATE {{cooc}} c SET weight = c.weight - 1 {match};
    DELETE FROM {{cooc}} c USING ({pairs}) p WHERE c.source_id = p.source_id
        AND c.target_id = p.target_id AND c.weight <= 0;"""
    match = f"(source_id, target_id) IN (SELECT p.source_id, p.target_id FROM ({pairs}) p)"
    return f"""
    UPDATE {{cooc}} SET weight = weight - 1 WHERE {match};
    DELETE FROM {{cooc}} WHERE weight <= 0 AND {match};"""


# --- PostgreSQL -------------------------------------------------------------------------------
# Link triggers are per statement, over transition tables: a row trigger fires only after the
# whole statement, when it would see (inserting) or miss (deleting) the statement's other rows
# as well, and count their pairs twice or not at all. ``changed`` holds the statement's rows
# (inserted, deleted, or the old or new side of re-pointed ones); a pair counts when one of its
# links is in ``changed`` and the other is another row of ``changed`` (each ordered pair once)
# or an untouched row of the table, in the same live memory.

PG_PAIRS = """
    SELECT c.account_id, c.entity_id AS source_id, o.entity_id AS target_id
      FROM {changed} AS c JOIN {link} o ON o.memory_id = c.memory_id
      JOIN {memory} m ON m.id = c.memory_id AND m.deleted_at IS NULL
     WHERE o.id NOT IN (SELECT x.id FROM {changed} AS x)
    UNION ALL
    SELECT c.account_id, o.entity_id, c.entity_id
      FROM {changed} AS c JOIN {link} o ON o.memory_id = c.memory_id
      JOIN {memory} m ON m.id = c.memory_id AND m.deleted_at IS NULL
     WHERE o.id NOT IN (SELECT x.id FROM {changed} AS x)
    UNION ALL
    SELECT a.account_id, a.entity_id, b.entity_id
      FROM {changed} AS a JOIN {changed} AS b ON b.memory_id = a.memory_id AND b.id <> a.id
      JOIN {memory} m ON m.id = a.memory_id AND m.deleted_at IS NULL"""
PG_COUNTED = ("SELECT MIN(account_id) AS account_id, source_id, target_id, COUNT(*) AS n "
              "FROM (" + PG_PAIRS + ") pairs GROUP BY source_id, target_id")


def pg_add(pairs: str) -> str:
    return f"""
    INSERT INTO {{cooc}} AS c (account_id, source_id, target_id, weight)
    SELECT account_id, source_id, target_id, n FROM ({pairs}) p
    ON CONFLICT (source_id, target_id) DO UPDATE SET weight = c.weight + EXCLUDED.weight;"""


def pg_remove(pairs: str) -> str:
    return f"""
    UPDATE {{cooc}} c SET weight = c.weight - p.n FROM ({pairs}) p
     WHERE c.source_id = p.source_id AND c.target_id = p.target_id;
    DELETE FROM {{cooc}} c USING ({pairs}) p
     WHERE c.source_id = p.source_id AND c.target_id = p.target_id AND c.weight <= 0;"""


def pg_link_pairs(changed: str) -> str:
    return PG_COUNTED.replace("{changed}", changed)


# Locks the memories a statement's links point to (in id order), so that two transactions
# linking to one memory take turns and the second sees the first one's links.
PG_LOCK = """
    PERFORM 1 FROM {memory} WHERE id IN (SELECT memory_id FROM {changed}) ORDER BY id
        FOR NO KEY UPDATE;"""

MOVED = """SELECT o.id FROM old_links o JOIN new_links n ON n.id = o.id
     WHERE o.entity_id <> n.entity_id OR o.memory_id <> n.memory_id"""

POSTGRES = [
    """CREATE TABLE {cooc} (
        source_id uuid NOT NULL,
        target_id uuid NOT NULL,
        account_id bigint NOT NULL,
        weight integer NOT NULL,
        PRIMARY KEY (source_id, target_id))""",
    # An entity's strongest neighbours first: the neighbourhood's top-k per node is a short
    # range scan of this index.
    "CREATE INDEX {cooc}_top ON {cooc} (source_id, weight DESC, target_id)",
    "CREATE INDEX {cooc}_account ON {cooc} (account_id)",
    """CREATE FUNCTION {cooc}_link_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN""" + PG_LOCK.replace("{changed}", "new_links")
    + pg_add(pg_link_pairs("new_links")) + """
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION {cooc}_link_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN""" + PG_LOCK.replace("{changed}", "old_links")
    + pg_remove(pg_link_pairs("old_links")) + """
        RETURN NULL;
    END $$""",
    # Re-pointed links (entity or memory changed; other updates change no pair): the old
    # rows' pairs go, as if deleted from the table before the statement, then the new rows'
    # pairs come, as if inserted.
    """CREATE FUNCTION {cooc}_link_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (""" + MOVED + """) THEN
            RETURN NULL;  -- a relationship or score changed: no pair did
        END IF;
        PERFORM 1 FROM {memory} WHERE id IN (SELECT memory_id FROM old_links
                                             UNION SELECT memory_id FROM new_links)
         ORDER BY id FOR NO KEY UPDATE;"""
    + pg_remove(pg_link_pairs("(SELECT o.* FROM old_links o WHERE o.id IN (" + MOVED + "))"))
    + pg_add(pg_link_pairs("(SELECT n.* FROM new_links n WHERE n.id IN (" + MOVED + "))"))
    + """
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION {cooc}_memory() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.deleted_at IS NULL THEN
            """ + add(MEMORY_PAIRS.replace("{row}", "NEW")) + """
        ELSE
            """ + remove(MEMORY_PAIRS.replace("{row}", "OLD"), "postgresql") + """
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION {cooc}_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        TRUNCATE {cooc};
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER {cooc}_link_insert AFTER INSERT ON {link}
        REFERENCING NEW TABLE AS new_links
        FOR EACH STATEMENT EXECUTE FUNCTION {cooc}_link_insert()""",
    """CREATE TRIGGER {cooc}_link_delete AFTER DELETE ON {link}
        REFERENCING OLD TABLE AS old_links
        FOR EACH STATEMENT EXECUTE FUNCTION {cooc}_link_delete()""",
    """CREATE TRIGGER {cooc}_link_update AFTER UPDATE ON {link}
        REFERENCING OLD TABLE AS old_links NEW TABLE AS new_links
        FOR EACH STATEMENT EXECUTE FUNCTION {cooc}_link_update()""",
    # A memory's links change no pair of another memory: these stay per row.
    """CREATE TRIGGER {cooc}_memory_update AFTER UPDATE OF deleted_at ON {memory}
        FOR EACH ROW WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
        EXECUTE FUNCTION {cooc}_memory()""",
    """CREATE TRIGGER {cooc}_memory_delete AFTER DELETE ON {memory}
        FOR EACH ROW WHEN (OLD.deleted_at IS NULL) EXECUTE FUNCTION {cooc}_memory()""",
    """CREATE TRIGGER {cooc}_link_truncate AFTER TRUNCATE ON {link}
        FOR EACH STATEMENT EXECUTE FUNCTION {cooc}_truncate()""",
    """CREATE TRIGGER {cooc}_memory_truncate AFTER TRUNCATE ON {memory}
        FOR EACH STATEMENT EXECUTE FUNCTION {cooc}_truncate()""",
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS {cooc}_link_insert ON {link}",
    "DROP TRIGGER IF EXISTS {cooc}_link_delete ON {link}",
    "DROP TRIGGER IF EXISTS {cooc}_link_update ON {link}",
    "DROP TRIGGER IF EXISTS {cooc}_link_truncate ON {link}",
    "DROP TRIGGER IF EXISTS {cooc}_memory_update ON {memory}",
    "DROP TRIGGER IF EXISTS {cooc}_memory_delete ON {memory}",
    "DROP TRIGGER IF EXISTS {cooc}_memory_truncate ON {memory}",
    "DROP FUNCTION IF EXISTS {cooc}_link_insert()",
    "DROP FUNCTION IF EXISTS {cooc}_link_delete()",
    "DROP FUNCTION IF EXISTS {cooc}_link_update()",
    "DROP FUNCTION IF EXISTS {cooc}_memory()",
    "DROP FUNCTION IF EXISTS {cooc}_truncate()",
    "DROP TABLE IF EXISTS {cooc}",
]

# --- SQLite -----------------------------------------------------------------------------------

SQLITE = [
    """CREATE TABLE {cooc} (
        source_id char(32) NOT NULL,
        target_id char(32) NOT NULL,
        account_id integer NOT NULL,
        weight integer NOT NULL,
        PRIMARY KEY (source_id, target_id))""",
    "CREATE INDEX {cooc}_top ON {cooc} (source_id, weight DESC, target_id)",
    "CREATE INDEX {cooc}_account ON {cooc} (account_id)",
    "CREATE TRIGGER {cooc}_link_insert AFTER INSERT ON {link} BEGIN"
    + add(LINK_PAIRS.replace("{row}", "NEW")) + " END",
    "CREATE TRIGGER {cooc}_link_delete AFTER DELETE ON {link} BEGIN"
    + remove(LINK_PAIRS.replace("{row}", "OLD"), "sqlite") + " END",
    """CREATE TRIGGER {cooc}_link_update AFTER UPDATE OF entity_id, memory_id ON {link}
        WHEN OLD.entity_id IS NOT NEW.entity_id OR OLD.memory_id IS NOT NEW.memory_id BEGIN"""
    + remove(LINK_PAIRS.replace("{row}", "OLD"), "sqlite")
    + add(LINK_PAIRS.replace("{row}", "NEW")) + " END",
    """CREATE TRIGGER {cooc}_memory_gone AFTER UPDATE OF deleted_at ON {memory}
        WHEN OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL BEGIN"""
    + remove(MEMORY_PAIRS.replace("{row}", "OLD"), "sqlite") + " END",
    """CREATE TRIGGER {cooc}_memory_back AFTER UPDATE OF deleted_at ON {memory}
        WHEN OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL BEGIN"""
    + add(MEMORY_PAIRS.replace("{row}", "NEW")) + " END",
    """CREATE TRIGGER {cooc}_memory_delete AFTER DELETE ON {memory}
        WHEN OLD.deleted_at IS NULL BEGIN"""
    + remove(MEMORY_PAIRS.replace("{row}", "OLD"), "sqlite") + " END",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS {{cooc}}_{name}" for name in (
        "link_insert", "link_delete", "link_update", "memory_gone", "memory_back",
        "memory_delete")
] + ["DROP TABLE IF EXISTS {cooc}"]

FILL = """
    INSERT INTO {cooc} (account_id, source_id, target_id, weight)
    SELECT MIN(a.account_id), a.entity_id, b.entity_id, COUNT(*)
      FROM {link} a JOIN {link} b ON b.memory_id = a.memory_id AND b.id <> a.id
      JOIN {memory} m ON m.id = a.memory_id AND m.deleted_at IS NULL
     GROUP BY a.entity_id, b.entity_id"""


def _run(schema_editor, statements, names) -> None:
    for statement in statements:
        schema_editor.execute(statement.format(**names), params=None)


def create(apps, schema_editor):
    names = _names(apps)
    vendor = schema_editor.connection.vendor
    _run(schema_editor, POSTGRES if vendor == "postgresql" else SQLITE, names)
    _run(schema_editor, [FILL], names)


def drop(apps, schema_editor):
    names = _names(apps)
    vendor = schema_editor.connection.vendor
    _run(schema_editor, POSTGRES_DROP if vendor == "postgresql" else SQLITE_DROP, names)


class Migration(migrations.Migration):

    dependencies = [
        ("entities_app", "0001_entities"),
        ("memories_app", "0006_memory_extract_entities"),
    ]

    operations = [migrations.RunPython(create, drop)]
