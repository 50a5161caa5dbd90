"""Where the two databases differ: the vector column, nearest-neighbour and full-text
lookups, and the migration that builds their indexes.

PostgreSQL: a pgvector ``vector(384)`` column with an HNSW cosine index, and a generated
``tsvector`` column with a GIN index. SQLite: the vector as a float32 blob scored exactly in
numpy, and an FTS5 table kept in step by triggers.
"""

from __future__ import annotations

import json

import numpy as np
from django.db import connection, models

from .embeddings import DIMENSION

PG_TEXT_CONFIG = "english"


class VectorField(models.Field):
    """A fixed-width float vector: ``vector(n)`` on PostgreSQL, a float32 blob elsewhere."""

    description = "Embedding vector"

    def __init__(self, *args, dimension: int = DIMENSION, **kwargs):
        self.dimension = dimension
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["dimension"] = self.dimension
        return name, path, args, kwargs

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return f"vector({self.dimension})"
        return "blob"

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        array = np.asarray(value, dtype=np.float32).reshape(-1)
        if connection.vendor == "postgresql":
            return to_pg_literal(array)
        return array.tobytes()

    def from_db_value(self, value, expression, connection):
        return parse_vector(value)

    def to_python(self, value):
        return parse_vector(value)


def to_pg_literal(array: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in array.tolist()) + "]"


def parse_vector(value):
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), dtype=np.float32)
    if isinstance(value, str):
        return np.asarray(json.loads(value), dtype=np.float32)
    return np.asarray(value, dtype=np.float32)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


# --- lookups ------------------------------------------------------------------------------


def nearest(queryset, vector: np.ndarray, k: int) -> list[tuple]:
    """The ``k`` memories of ``queryset`` nearest to ``vector``, with cosine similarity."""
    queryset = queryset.filter(embedding__isnull=False)
    if is_postgres():
        return _pg_nearest(queryset, vector, k)
    pks, matrix = _embeddings_of(queryset)
    if not pks:
        return []
    sims = matrix @ vector
    top = np.argsort(-sims, kind="stable")[:k]
    memories = queryset.model.objects.defer("embedding").in_bulk([pks[i] for i in top])
    return [(memories[pks[i]], float(sims[i])) for i in top if pks[i] in memories]


def _pg_nearest(queryset, vector: np.ndarray, k: int) -> list[tuple]:
    with connection.cursor() as cursor:
        # pgvector >= 0.8: keep scanning the HNSW graph until k rows pass the filters.
        cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(40, k)])
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
    rows = _with_pg_distance(queryset, vector).order_by("distance")[:k]
    ranked = sorted(rows, key=lambda m: m.distance)  # relaxed order: re-sort the few rows
    return [(m, 1.0 - float(m.distance)) for m in ranked]


def _with_pg_distance(queryset, vector: np.ndarray):
    """Cosine distance computed in the database; the vectors themselves stay there."""
    distance = models.expressions.RawSQL(
        "embedding <=> %s::vector", [to_pg_literal(vector)], output_field=models.FloatField()
    )
    return queryset.defer("embedding").annotate(distance=distance)


def _embeddings_of(queryset) -> tuple[list, np.ndarray]:
    rows = list(queryset.values_list("pk", "embedding"))
    if not rows:
        return [], np.zeros((0, DIMENSION), dtype=np.float32)
    pks = [pk for pk, _ in rows]
    matrix = np.vstack([vec for _, vec in rows]).astype(np.float32, copy=False)
    return pks, matrix


def score(queryset, pks: list, vector: np.ndarray | None) -> list[tuple]:
    """The memories ``pks`` of ``queryset`` with their cosine similarity to ``vector``."""
    if not pks:
        return []
    queryset = queryset.filter(pk__in=pks)
    if vector is None:
        return [(m, 0.0) for m in queryset.defer("embedding")]
    if is_postgres():
        return [(m, 1.0 - m.distance if m.distance is not None else 0.0)
                for m in _with_pg_distance(queryset, vector)]
    return [(m, float(m.embedding @ vector) if m.embedding is not None else 0.0)
            for m in queryset]


def keyword_ids(queryset, terms: list[str], cap: int) -> list:
    """Up to ``cap`` ids of memories in ``queryset`` whose content matches every one of
    ``terms``, in whatever order the index gives them: for a common term the database stops
    after ``cap`` rows instead of sorting every match."""
    if is_postgres():
        where = f"search_vector @@ plainto_tsquery('{PG_TEXT_CONFIG}', %s)"
        params = [" ".join(terms)]
    else:
        table = queryset.model._meta.db_table
        where = f'"{table}".rowid IN (SELECT rowid FROM memory_fts WHERE memory_fts MATCH %s)'
        params = [" ".join('"' + term.replace('"', '""') + '"' for term in terms)]
    return list(queryset.extra(where=[where], params=params).order_by()
                .values_list("pk", flat=True)[:cap])


# --- migration operations -------------------------------------------------------------------

PG_FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS vector",
]
PG_INDEXES = [
    f"ALTER TABLE memories_app_memory ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
    f"(to_tsvector('{PG_TEXT_CONFIG}', content)) STORED",
    "CREATE INDEX memory_search_vector_gin ON memories_app_memory USING gin (search_vector)",
    "CREATE INDEX memory_embedding_hnsw ON memories_app_memory "
    "USING hnsw (embedding vector_cosine_ops)",
]
SQLITE_INDEXES = [
    "CREATE VIRTUAL TABLE memory_fts USING fts5(content, content='memories_app_memory', "
    "content_rowid='rowid', tokenize='porter unicode61')",
    "CREATE TRIGGER memory_fts_insert AFTER INSERT ON memories_app_memory BEGIN "
    "INSERT INTO memory_fts(rowid, content) VALUES (new.rowid, new.content); END",
    "CREATE TRIGGER memory_fts_delete AFTER DELETE ON memories_app_memory BEGIN "
    "INSERT INTO memory_fts(memory_fts, rowid, content) VALUES ('delete', old.rowid, old.content);"
    " END",
    "CREATE TRIGGER memory_fts_update AFTER UPDATE OF content ON memories_app_memory BEGIN "
    "INSERT INTO memory_fts(memory_fts, rowid, content) VALUES ('delete', old.rowid, old.content);"
    " INSERT INTO memory_fts(rowid, content) VALUES (new.rowid, new.content); END",
    "INSERT INTO memory_fts(memory_fts) VALUES ('rebuild')",
]
PG_BACKWARD = [
    "DROP INDEX IF EXISTS memory_embedding_hnsw",
    "DROP INDEX IF EXISTS memory_search_vector_gin",
    "ALTER TABLE memories_app_memory DROP COLUMN IF EXISTS search_vector",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS memory_fts_insert",
    "DROP TRIGGER IF EXISTS memory_fts_delete",
    "DROP TRIGGER IF EXISTS memory_fts_update",
    "DROP TABLE IF EXISTS memory_fts",
]


def _run(schema_editor, statements) -> None:
    for statement in statements:
        schema_editor.execute(statement)


def create_extension(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        _ensure_pgvector(schema_editor)


def _ensure_pgvector(schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            raise RuntimeError(
                "PostgreSQL needs the pgvector extension: install your distribution's "
                "package (e.g. postgresql-15-pgvector), use the pgvector/pgvector container "
                "image, or run scripts/install-pgvector.sh as root"
            )
    _run(schema_editor, PG_FORWARD)


def create_search_indexes(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    _run(schema_editor, PG_INDEXES if vendor == "postgresql" else SQLITE_INDEXES)


def drop_search_indexes(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    _run(schema_editor, PG_BACKWARD if vendor == "postgresql" else SQLITE_BACKWARD)
