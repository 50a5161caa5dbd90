"""The entity graph: which live entities are mentioned together in live memories.

Two entities co-occur when both are linked to one live memory; the weight of the pair is the
number of live memories they share. The weights live in ``entities_app_cooccurrence``, one
row per ordered pair, kept exact by database triggers on every write of links and memories
(migration 0002 says how), so a read never aggregates links: an entity's strongest
neighbours are one range of the index (source_id, weight DESC, target_id).

Reads keep only live entities of the account (a soft-deleted entity keeps its rows, hidden
here until it is restored) and break ties by the neighbour's id, so answers are the same on
SQLite and PostgreSQL. Each read is a fixed number of queries, whatever the graph's size:
:func:`entity_relationships` two, :func:`entity_neighborhood` one per hop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.expressions import Expression
from django.db.models.functions import Coalesce
from django.utils.dateparse import parse_datetime

from memories_app.models import Memory

from .models import Entity, EntityLink

COOCCURRENCE = "entities_app_cooccurrence"
SNIPPET_CHARS = 200
MAX_DEPTH = 3
DEFAULT_NEIGHBORS = 10
MAX_NEIGHBORS = 50


@dataclass(frozen=True)
class Node:
    id: str  # the canonical UUID text
    name: str
    entity_type: str
    depth: int


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    weight: int


@dataclass
class Neighborhood:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


@dataclass(frozen=True)
class SharedMemory:
    id: uuid.UUID
    content: str  # the first SNIPPET_CHARS characters, "…" when cut
    created_at: datetime


@dataclass(frozen=True)
class Relationship:
    entity: Node  # depth 1
    shared_memory_count: int
    latest_shared_memory: SharedMemory | None


@dataclass(frozen=True)
class RelationshipPage:
    rows: list[Relationship]
    total_count: int


# --- the entity asked for --------------------------------------------------------------------


class RelationshipCount(Expression):
    """The entity's row count in the co-occurrence table (live neighbours of its account),
    as a correlated subquery on whatever alias the entity table has in the query being
    compiled (its own name, or U0 inside another query)."""

    def __init__(self):
        super().__init__(output_field=IntegerField())

    def as_sql(self, compiler, connection):
        quote = connection.ops.quote_name
        outer = compiler.quote_name_unless_alias(next(iter(compiler.query.alias_map)))
        tables = _tables()
        return (f"(SELECT COUNT(*) FROM {tables['cooc']} c JOIN {tables['entity']} t "
                f"ON t.id = c.target_id WHERE c.source_id = {outer}.{quote('id')} "
                f"AND t.deleted_at IS NULL AND t.account_id = {outer}.{quote('account_id')})",
                [])

    def get_group_by_cols(self):
        return []


def relationship_count() -> RelationshipCount:
    """``relationship_count`` as entities_app.models.EntityQuerySet.with_counts defines it
    (the other live entities of the account sharing a live memory), read from the
    co-occurrence table: an index range, where aggregating the links of an entity in tens of
    thousands of memories takes hundreds of milliseconds. For querysets of entities."""
    return RelationshipCount()


def memory_count():
    """``memory_count`` as with_counts defines it: the live memories linked to the entity
    (a link is unique per memory, so its rows count them)."""
    rows = (EntityLink.objects.filter(entity=OuterRef("pk"), memory__deleted_at__isnull=True)
            .order_by().values("entity").annotate(n=Count("*")).values("n"))
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def entity_get(*, account, entity_id) -> Entity | None:
    """The live entity of ``account`` with its counts, in one query."""
    return (Entity.objects.live().for_account(account).filter(pk=entity_id)
            .annotate(memory_count=memory_count(), relationship_count=relationship_count())
            .first())


# --- queries ----------------------------------------------------------------------------------


def _tables() -> dict[str, str]:
    quote = connection.ops.quote_name
    return {"cooc": quote(COOCCURRENCE), "entity": quote(Entity._meta.db_table),
            "link": quote(EntityLink._meta.db_table), "memory": quote(Memory._meta.db_table)}


def _uuid_param(value):
    return Entity._meta.pk.get_db_prep_value(value, connection)


def _uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _datetime(value) -> datetime:
    if isinstance(value, str):  # SQLite hands back text
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _in_list(values: list) -> tuple[str, list]:
    """``= ANY(%s)`` with one array on PostgreSQL, ``IN (%s, …)`` on SQLite."""
    params = [_uuid_param(v) for v in values]
    if connection.vendor == "postgresql":
        return "= ANY(%s)", [params]
    return f"IN ({', '.join(['%s'] * len(params))})", params


# The top ``k`` live neighbours of each source, strongest first, ties by id. PostgreSQL reads
# only those rows of the index per source (LATERAL ... LIMIT); SQLite, which has no LATERAL,
# ranks each source's rows with a window: the same rows in the same order.
HOP_POSTGRES = """
    SELECT f.source_id::text, n.target_id::text, n.weight, n.name, n.entity_type
      FROM unnest(%s::uuid[]) AS f(source_id)
     CROSS JOIN LATERAL (
        SELECT c.target_id, c.weight, e.name, e.entity_type
          FROM {cooc} c JOIN {entity} e ON e.id = c.target_id
         WHERE c.source_id = f.source_id AND e.deleted_at IS NULL AND e.account_id = %s
         ORDER BY c.weight DESC, c.target_id
         LIMIT %s) n"""
HOP_WINDOW = """
    SELECT source_id, target_id, weight, name, entity_type FROM (
        SELECT c.source_id, c.target_id, c.weight, e.name, e.entity_type,
               ROW_NUMBER() OVER (PARTITION BY c.source_id
                                  ORDER BY c.weight DESC, c.target_id) AS rank
          FROM {cooc} c JOIN {entity} e ON e.id = c.target_id
         WHERE c.source_id {sources} AND e.deleted_at IS NULL AND e.account_id = %s
    ) ranked WHERE rank <= %s"""


def top_neighbors(*, account_id: int, sources: list[str], k: int,
                  portable: bool = False) -> dict[str, list[tuple]]:
    """{source id: [(neighbour id, weight, name, entity_type), …]}: each source's ``k``
    strongest live neighbours, strongest first, ties by id; ids as canonical UUID strings
    (a neighbourhood handles up to 100,000 rows a hop: strings, not UUID objects). One
    query. ``portable`` runs the window form on PostgreSQL too (tests compare the two)."""
    if not sources:
        return {}
    native = connection.vendor == "postgresql" and not portable
    if native:
        sql = HOP_POSTGRES.format(**_tables())
        params = [list(sources), account_id, k]
    else:
        where, source_params = _in_list(sources)
        sql = HOP_WINDOW.format(sources=where, **_tables())
        params = [*source_params, account_id, k]
    found: dict[str, list[tuple]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    text = (lambda v: v) if native else (lambda v: str(_uuid(v)))
    for source, target, weight, name, entity_type in rows:
        found.setdefault(text(source), []).append((text(target), weight, name, entity_type))
    for neighbours in found.values():
        neighbours.sort(key=lambda row: (-row[1], row[0]))  # canonical text sorts as UUIDs
    return found


def entity_neighborhood(*, entity: Entity, depth: int, max_neighbors: int) -> Neighborhood:
    """The entity and the live entities up to ``depth`` hops from it: breadth first, each
    node reached before the last hop adds its ``max_neighbors`` strongest neighbours (ties by
    id). Nodes carry the hop they were first reached at (the entity itself: 0), in the order
    reached; an edge joins each expanded node to each of those neighbours, once per pair,
    weighted by the memories the two share. One query per hop."""
    center = str(entity.pk)
    graph = Neighborhood(nodes=[Node(center, entity.name, entity.entity_type, 0)])
    seen, pairs, frontier = {center}, set(), [center]
    for hop in range(1, depth + 1):
        found = top_neighbors(account_id=entity.account_id, sources=frontier, k=max_neighbors)
        reached = []
        for source in frontier:
            for target, weight, name, entity_type in found.get(source, ()):
                pair = (source, target) if source < target else (target, source)
                if pair not in pairs:
                    pairs.add(pair)
                    graph.edges.append(Edge(source, target, weight))
                if target not in seen:
                    seen.add(target)
                    reached.append(target)
                    graph.nodes.append(Node(target, name, entity_type, hop))
        if not reached:
            break
        frontier = reached
    return graph


RELATIONSHIPS = """
    SELECT c.target_id, e.name, e.entity_type, c.weight, COUNT(*) OVER () AS total,
           c.last_memory_id
      FROM {cooc} c JOIN {entity} e ON e.id = c.target_id
     WHERE c.source_id = %s AND e.deleted_at IS NULL AND e.account_id = %s
     ORDER BY c.weight DESC, c.target_id
     LIMIT %s OFFSET %s"""
# The newest memory a pair was counted from (kept in its row), when it is still live and
# linked to both: then it is the newest they share (see migration 0005).
STORED_LATEST = """
    SELECT b.entity_id, m.id, SUBSTR(m.content, 1, %s), m.created_at
      FROM {link} b
      JOIN {link} a ON a.memory_id = b.memory_id AND a.entity_id = %s
      JOIN {memory} m ON m.id = b.memory_id AND m.deleted_at IS NULL
     WHERE (b.entity_id, b.memory_id) IN (VALUES {pairs})"""
# Otherwise: the newest live memory (ties by id) the entity shares with each of those.
LATEST_SHARED = """
    SELECT s.target_id, m.id, SUBSTR(m.content, 1, %s), m.created_at FROM (
        SELECT b.entity_id AS target_id, a.memory_id,
               ROW_NUMBER() OVER (PARTITION BY b.entity_id
                                  ORDER BY shared.created_at DESC, shared.id DESC) AS rank
          FROM {link} a
          JOIN {link} b ON b.memory_id = a.memory_id
          JOIN {memory} shared ON shared.id = a.memory_id AND shared.deleted_at IS NULL
         WHERE a.entity_id = %s AND b.entity_id {targets}
    ) s JOIN {memory} m ON m.id = s.memory_id
     WHERE s.rank = 1"""
COUNT_RELATIONSHIPS = """
    SELECT COUNT(*) FROM {cooc} c JOIN {entity} e ON e.id = c.target_id
     WHERE c.source_id = %s AND e.deleted_at IS NULL AND e.account_id = %s"""


def entity_relationships(*, entity: Entity, limit: int, offset: int) -> RelationshipPage:
    """The live entities that share live memories with ``entity``, most shared first (ties
    by id), each with the count and the newest shared memory. Two queries (three when a
    row's kept newest memory was deleted or unlinked since; three for a page past the end,
    to count)."""
    tables, me = _tables(), _uuid_param(entity.pk)
    with connection.cursor() as cursor:
        cursor.execute(RELATIONSHIPS.format(**tables), [me, entity.account_id, limit, offset])
        page = cursor.fetchall()
        if not page:
            total = 0
            if offset:
                cursor.execute(COUNT_RELATIONSHIPS.format(**tables), [me, entity.account_id])
                total = cursor.fetchone()[0]
            return RelationshipPage(rows=[], total_count=total)
        kept = [(row[0], row[5]) for row in page if row[5] is not None]
        latest = {}
        if kept:
            cursor.execute(
                STORED_LATEST.format(pairs=", ".join(["(%s, %s)"] * len(kept)), **tables),
                [SNIPPET_CHARS + 1, me,
                 *[_uuid_param(v) for pair in kept for v in pair]])
            latest = _shared(cursor.fetchall())
        stale = [row[0] for row in page if _uuid(row[0]) not in latest]
        if stale:
            targets, target_params = _in_list(stale)
            cursor.execute(LATEST_SHARED.format(targets=targets, **tables),
                           [SNIPPET_CHARS + 1, me, *target_params])
            latest |= _shared(cursor.fetchall())
    rows = [Relationship(entity=Node(str(_uuid(target)), name, entity_type, 1),
                         shared_memory_count=int(weight),
                         latest_shared_memory=latest.get(_uuid(target)))
            for target, name, entity_type, weight, _, _ in page]
    return RelationshipPage(rows=rows, total_count=int(page[0][4]))


def _shared(rows) -> dict[uuid.UUID, SharedMemory]:
    return {_uuid(target): SharedMemory(_uuid(pk), _snippet(text), _datetime(at))
            for target, pk, text, at in rows}


def _snippet(text: str) -> str:
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


# --- counts and upkeep ------------------------------------------------------------------------


REBUILD = """
    INSERT INTO {cooc} (account_id, source_id, target_id, weight, last_memory_id, last_at)
    SELECT account_id, source_id, target_id, weight, memory_id, at FROM (
        SELECT a.account_id, a.entity_id AS source_id, b.entity_id AS target_id,
               m.id AS memory_id, m.created_at AS at,
               COUNT(*) OVER (PARTITION BY a.entity_id, b.entity_id) AS weight,
               ROW_NUMBER() OVER (PARTITION BY a.entity_id, b.entity_id
                                  ORDER BY m.created_at DESC, m.id DESC) AS rank
          FROM {link} a JOIN {link} b ON b.memory_id = a.memory_id AND b.id <> a.id
          JOIN {memory} m ON m.id = a.memory_id AND m.deleted_at IS NULL
         {where}
    ) ranked WHERE rank = 1"""


def cooccurrence_rebuild(*, account_id: int | None = None) -> int:
    """Recomputes the co-occurrence rows (of one account, or all) from the links; returns
    how many there are. The triggers keep them exact; this is for a bulk load made with
    triggers disabled, and for checking them."""
    tables = _tables()
    where, params = ("WHERE a.account_id = %s", [account_id]) if account_id else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {tables['cooc']} " + (
            "WHERE account_id = %s" if account_id else ""), params)
        cursor.execute(REBUILD.format(where=where, **tables), params)
        return cursor.rowcount


def cooccurrence_rows(*, account_id: int | None = None) -> dict[tuple, int]:
    """{(source id, target id): weight} as stored (tests compare it with a rebuild)."""
    tables = _tables()
    where, params = ("WHERE account_id = %s", [account_id]) if account_id else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT source_id, target_id, weight FROM {tables['cooc']} {where}",
                       params)
        return {(_uuid(s), _uuid(t)): int(w) for s, t, w in cursor.fetchall()}
