"""Where the two databases differ: the vector column, nearest-neighbour and full-text
lookups, and the migration that builds their indexes.

PostgreSQL: a pgvector ``vector(384)`` column with an HNSW cosine index, and a generated
``tsvector`` column with a GIN index. SQLite: the vector as a float32 blob scored exactly in
numpy, and an FTS5 table kept in step by triggers.
"""

from __future__ import annotations

import json
import re

import numpy as np
from django.core.exceptions import ValidationError
from django.db import connection, connections, models

from .embeddings import DIMENSION
from .wordforms import forms

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
            return vector_literal(array)
        return array.tobytes()

    def from_db_value(self, value, expression, connection):
        return parse_vector(value)

    def to_python(self, value):
        """A vector from the database, a fixture or a form: an array, a list of numbers, a
        JSON list, or numpy's printed form (what ``dumpdata`` wrote before it was fixed)."""
        try:
            vector = parse_vector(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"not a vector: {exc}", code="invalid") from None
        if vector is not None and vector.shape != (self.dimension,):
            raise ValidationError(
                f"a vector of {self.dimension} numbers is needed, not {vector.size}",
                code="invalid")
        return vector

    def value_to_string(self, obj):
        """The vector as a JSON list of numbers, each float32 exactly (``dumpdata``)."""
        vector = self.value_from_object(obj)
        return None if vector is None else vector_literal(vector)


def vector_literal(array) -> str:
    """``[x,y,…]``: pgvector's input syntax and a JSON list; 9 significant digits give back
    every float32 exactly."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(array, np.float32).tolist()) + "]"


def parse_vector(value):
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), dtype=np.float32)
    if isinstance(value, str):
        return _parse_vector_text(value)
    return np.asarray(value, dtype=np.float32).reshape(-1)


def _parse_vector_text(text: str) -> np.ndarray:
    text = text.strip()
    if "..." in text:
        raise ValueError("the printed vector was shortened with '...'")
    try:
        return np.asarray(json.loads(text), dtype=np.float32).reshape(-1)
    except json.JSONDecodeError:  # numpy's printed form: "[ 2.1e-03 -5.9e-02 …]"
        if not (text.startswith("[") and text.endswith("]")):
            raise ValueError("a vector is written [x, y, …]") from None
        return np.array([float(x) for x in text[1:-1].split()], dtype=np.float32)


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
    # Read through the queryset, so its annotations (the project id) come with the rows.
    memories = queryset.defer("embedding").in_bulk([pks[i] for i in top])
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
        "embedding <=> %s::vector", [vector_literal(vector)], output_field=models.FloatField()
    )
    return queryset.defer("embedding").annotate(distance=distance)


def _embeddings_of(queryset) -> tuple[list, np.ndarray]:
    # unordered: SQLite reads the rows through the narrowest index (a project's, say)
    # instead of walking the account's newest-first index to honour an ordering no one needs
    rows = list(queryset.order_by().values_list("pk", "embedding"))
    if not rows:
        return [], np.zeros((0, DIMENSION), dtype=np.float32)
    pks = [pk for pk, _ in rows]
    matrix = np.vstack([vec for _, vec in rows]).astype(np.float32, copy=False)
    return pks, matrix


def score(queryset, pks: list, vector: np.ndarray | None) -> list[tuple]:
    """The memories ``pks`` of ``queryset`` with their cosine similarity to ``vector``."""
    if not pks:
        return []
    queryset = queryset.filter(pk__in=pks).order_by()
    if vector is None:
        return [(m, 0.0) for m in queryset.defer("embedding")]
    if is_postgres():
        return [(m, 1.0 - m.distance if m.distance is not None else 0.0)
                for m in _with_pg_distance(queryset, vector)]
    return [(m, float(m.embedding @ vector) if m.embedding is not None else 0.0)
            for m in queryset]


def cosines(queryset, pks: list, vector: np.ndarray) -> dict:
    """{pk: cosine similarity of its embedding to ``vector``} for the rows ``pks`` of
    ``queryset``'s model (ids the caller already scoped) that have one. One statement,
    reading no row objects; on PostgreSQL the database computes them."""
    if not pks:
        return {}
    model = queryset.model
    if not is_postgres():
        query = np.asarray(vector, dtype=np.float32)
        return {pk: _cos(query, e) for pk, e in model._base_manager.filter(pk__in=pks)
                .order_by().values_list("pk", "embedding") if e is not None}  # parsed
    table, pk_column = model._meta.db_table, model._meta.pk.column
    sql = (f'SELECT "{pk_column}", 1 - (embedding <=> %s::vector) FROM "{table}" '
           f'WHERE "{pk_column}" = ANY(%s::uuid[]) AND embedding IS NOT NULL')
    to_python = model._meta.pk.to_python
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, [vector_literal(vector), [str(pk) for pk in pks]])
        return {to_python(pk): float(cos) for pk, cos in cursor.fetchall()}


def pair_cosines(queryset, pairs: list[tuple], vector: np.ndarray) -> dict:
    """For each ``(pk, other_pk)`` of rows of ``queryset``'s model (ids the caller already
    scoped): {pk: (cos(vector, pk's embedding), cos(vector, other's), cos(pk's, other's))},
    for the pairs where both have an embedding. One statement; on PostgreSQL the database
    computes them, so no vector crosses the wire."""
    if not pairs:
        return {}
    model = queryset.model
    if not is_postgres():
        ids = {pk for pair in pairs for pk in pair}
        found = {pk: e for pk, e in model._base_manager.filter(pk__in=ids).order_by()
                 .values_list("pk", "embedding") if e is not None}  # parsed by the field
        query = np.asarray(vector, dtype=np.float32)
        out = {}
        for pk, other in pairs:
            if pk in found and other in found:
                own, theirs = found[pk], found[other]
                out[pk] = (_cos(query, own), _cos(query, theirs), _cos(own, theirs))
        return out
    table, pk_column = model._meta.db_table, model._meta.pk.column
    literal = vector_literal(vector)
    sql = (f'SELECT c."{pk_column}", 1 - (c.embedding <=> %s::vector), '
           f"1 - (o.embedding <=> %s::vector), 1 - (c.embedding <=> o.embedding) "
           f"FROM unnest(%s::uuid[], %s::uuid[]) AS pair (own, other) "
           f'JOIN "{table}" c ON c."{pk_column}" = pair.own '
           f'JOIN "{table}" o ON o."{pk_column}" = pair.other '
           f"WHERE c.embedding IS NOT NULL AND o.embedding IS NOT NULL")
    to_python = model._meta.pk.to_python
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, [literal, literal, [str(p) for p, _ in pairs],
                             [str(o) for _, o in pairs]])
        return {to_python(pk): (float(a), float(b), float(c))
                for pk, a, b, c in cursor.fetchall()}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return float(a @ b) / norm if norm else 0.0


def keyword_ids(queryset, terms: list[str], cap: int) -> list:
    """Up to ``cap`` ids of rows in ``queryset`` whose indexed text matches every one of
    ``terms`` (one lookup of :func:`keyword_lookups`). A term matches in any of its forms
    (:func:`.wordforms.forms`: "go" finds "went"), on both databases."""
    return keyword_lookups(queryset, [(terms, cap)])[0]


def keyword_lookups(queryset, lookups: list[tuple[list[str], int]]) -> list[list]:
    """For each ``(terms, cap)`` of ``lookups``: up to ``cap`` ids of rows in ``queryset``
    whose indexed text matches every one of ``terms``, in whatever order the index gives
    them (for a common term the database stops after ``cap`` rows instead of sorting every
    match). All the lookups are one statement (a ``UNION ALL`` of one capped subquery
    each), so a query of many terms costs one round trip and one planning. The model's
    table has the text index of a :class:`SearchIndex` (``search_vector`` on PostgreSQL,
    ``<name>_fts`` on SQLite)."""
    if not lookups:
        return []
    sql, params = _lookups_sql(queryset, lookups)
    return _fetch_lookups(queryset, sql, params, len(lookups))


def keyword_matches(queryset, terms: list[str], cap: int, pool: int) -> tuple[list[list], list]:
    """The matches of a query's ``terms`` in one statement: for each term up to ``cap`` ids
    of rows in ``queryset`` matching it (as :func:`keyword_lookups`), and the ids of rows
    matching every term when a query of several terms has a term whose list stopped at
    ``cap`` (such a row may be missing from that list), else none.

    Those rows are found inside the statement, without the text index reading a common
    term's matches a second time (on PostgreSQL, the main cost of a keyword search in a
    large account: benchmarks/scale_bench.py):

    * some term's list is complete (shorter than ``cap``): a row matching every term is in
      each complete list, so only those rows are checked against all the terms (SQLite:
      the ids common to the complete lists; PostgreSQL: the text index's AND of the
      complete terms, whose lists are short);
    * every list stopped at ``cap``: up to ``pool`` rows matching every term (SQLite: the
      FTS5 index's AND; PostgreSQL: see :func:`_pg_every_sql`).
    """
    if not terms:
        return [], []
    k = len(terms)
    sql, params = _lookups_sql(queryset, [([term], cap) for term in terms])
    _scan_from_the_first_page(queryset)
    if k == 1:
        return _fetch_lookups(queryset, sql, params, 1), []
    model = queryset.model
    table, pk = model._meta.db_table, model._meta.pk.column
    ctes = [f"_t (lookup, id) AS MATERIALIZED ({sql})",
            # how many of the lists stopped at the cap
            f"_n (capped) AS MATERIALIZED (SELECT count(*) FROM (SELECT lookup FROM _t "
            f"GROUP BY lookup HAVING count(*) >= {int(cap)}) AS _f)"]
    capped = "(SELECT capped FROM _n)"
    if is_postgres():
        more_ctes, more_params, branches, branch_params = _pg_every_sql(
            queryset, terms, cap, pool, capped)
        ctes += more_ctes
        params += more_params
    else:
        check, text = _match_where(model, terms)
        every_sql, every_params = _match_sql(queryset, terms, pool)
        common = (f"SELECT id FROM _t WHERE lookup IN (SELECT lookup FROM _t GROUP BY lookup "
                  f"HAVING count(*) < {int(cap)}) GROUP BY id HAVING count(*) = {k} - {capped}")
        branches = (
            f'SELECT {k}, "{table}"."{pk}" FROM "{table}" WHERE "{table}"."{pk}" IN ({common}) '
            f"AND {capped} BETWEEN 1 AND {k - 1} AND {check} "
            f"UNION ALL SELECT {k}, _every.* FROM ({every_sql}) AS _every WHERE {capped} = {k}")
        branch_params = [*text, *every_params]
    statement = f"WITH {', '.join(ctes)} SELECT lookup, id FROM _t UNION ALL {branches}"
    found = _fetch_lookups(queryset, statement, [*params, *branch_params], k + 1)
    every = list(dict.fromkeys(found[k]))  # PostgreSQL: the first pages, then the index
    return found[:k], every[:pool] if all(len(ids) >= cap for ids in found[:k]) else every


# A term in this share of the rows or more is read from the rows rather than through the
# text index when the rows matching every term are looked up (PostgreSQL).
COMMON_TERM_SHARE = 0.1
# When the statistics expect ``pool`` rows matching every term within EXPECTED_ROWS rows,
# they are first looked for in up to twice as many rows of the table's first FIRST_PAGES
# pages, read in order (PostgreSQL; ~1 µs a row at 1M memories, a GIN AND of two terms
# each in a fifth of the rows ~15 ms).
EXPECTED_ROWS = 4000
FIRST_PAGES = 1000


def _pg_every_sql(queryset, terms: list[str], cap: int, pool: int, capped: str):
    """PostgreSQL: the rows matching every one of ``terms`` when a term's list stopped at
    the cap, as CTEs (with their parameters) and the branches of the statement reading
    them (with theirs). Each looks the rows up through the text index for some of the
    terms and checks all of them on the rows it returns (:func:`_pg_check`):

    * some lists complete: the index's AND of the complete terms (a few hundred matches at
      most), so GIN does not build a common term's bitmap a second time;
    * every list capped: GIN's AND of the terms decodes each term's whole list of
      matches, ~1M entries for a word in most rows of a large table. So, by the planner's
      statistics (``pg_stats``: the most common lexemes and their shares of the rows):
      when the terms are common enough that ``pool`` rows should match them all within
      EXPECTED_ROWS rows (independent terms), up to twice as many rows of the table's
      first FIRST_PAGES pages are read in order (a TID range scan), stopping at ``pool``
      matches; if that found fewer, the index is asked only for the terms in fewer than
      COMMON_TERM_SHARE of the rows (at least the two rarest). Without statistics every
      term goes to the index."""
    k = len(terms)
    table = queryset.model._meta.db_table
    check, check_params = _pg_check(f'"{table}".search_vector', terms)
    and_of = "string_agg('(' || q::text || ')', ' & ')::tsquery"
    rows, params = [], []
    for n, term in enumerate(terms):
        query, text = _pg_term(term)
        rows.append(f"({n}, %s::text, {query})")
        params += [text, text]
    ctes = [
        # each term's lookup, text and query
        f"_q (lookup, t, q) AS MATERIALIZED (VALUES {', '.join(rows)})",
        # the complete terms
        f"_c (q) AS MATERIALIZED (SELECT {and_of} FROM _q WHERE numnode(q) > 0 AND lookup IN "
        f"(SELECT lookup FROM _t GROUP BY lookup HAVING count(*) < {int(cap)}))",
        f"_st (lexemes, shares) AS MATERIALIZED (SELECT most_common_elems::text::text[], "
        f"most_common_elem_freqs FROM pg_stats WHERE schemaname = ANY(current_schemas(false))"
        f" AND tablename = '{table}' AND attname = 'search_vector' AND NOT inherited)",
        # each term's share of the rows: the sum of its forms' lexemes', each once ("try",
        # "tried" and "tries" are one; 0: none of them among the most common lexemes)
        "_r AS MATERIALIZED (SELECT q, share, row_number() OVER (ORDER BY share, lookup) "
        "AS r FROM (SELECT lookup, q, (SELECT least(1, coalesce(sum(shares[array_position("
        "lexemes, l)]), 0)) FROM _st, (SELECT DISTINCT trim(both '''' from plainto_tsquery("
        f"'{PG_TEXT_CONFIG}', f)::text) AS l FROM unnest(string_to_array(t, ' or ')) AS f) "
        "AS _f) AS share FROM _q WHERE numnode(q) > 0) AS _l)",
        # the index's part of the query when every list is capped
        f"_s (q) AS MATERIALIZED (SELECT {and_of} FROM _r "
        f"WHERE share < {COMMON_TERM_SHARE} OR r <= 2)",
    ]

    def through_index(part: str, limit: int) -> tuple[str, list]:
        return (queryset.order_by()
                .extra(where=[f'"{table}".search_vector @@ (SELECT q FROM {part})', check],
                       params=check_params)
                .values_list("pk", flat=True)[:limit].query.sql_with_params())

    mixed, mixed_params = through_index("_c", cap)
    every, every_params = through_index("_s", pool)
    branches = f"SELECT {k}, _m.* FROM ({mixed}) AS _m WHERE {capped} BETWEEN 1 AND {k - 1} "
    every_branch = f"SELECT {k}, _every.* FROM ({every}) AS _every WHERE {capped} = {k}"
    if connection.pg_version >= 140000:  # a TID range scan reads only those pages
        first, first_params = (
            queryset.order_by()
            .extra(select={"_sv": f'"{table}".search_vector'},
                   where=[f"\"{table}\".ctid < '({FIRST_PAGES},0)'::tid"])
            .values_list("pk", "_sv")[:2 * EXPECTED_ROWS].query.sql_with_params())
        first_check, first_check_params = _pg_check("_w._sv", terms)
        ctes.append(
            # the expected matches within EXPECTED_ROWS rows: the product of the shares
            f"_b AS MATERIALIZED (SELECT _w.pk FROM ({first}) AS _w WHERE (SELECT "
            f"min(share) > 0 AND exp(sum(ln(greatest(share, 1e-9)))) * {EXPECTED_ROWS} "
            f">= {int(pool)} FROM _r) AND {first_check} LIMIT {int(pool)})")
        params += [*first_params, *first_check_params]
        branches += f"UNION ALL SELECT {k}, _b.pk FROM _b WHERE {capped} = {k} "
        every_branch += f" AND (SELECT count(*) FROM _b) < {int(pool)}"
    return ctes, params, f"{branches}UNION ALL {every_branch}", [*mixed_params,
                                                                  *every_params]


def _pg_check(column: str, terms: list[str]) -> tuple[str, list]:
    """``column`` (a tsvector) matches every one of ``terms``: ts_match_vq is @@ as a
    function, which no index serves, so it is read on the rows."""
    query, params = _pg_query(terms)
    return f"ts_match_vq({column}, {query})", params


def _pg_term(term: str) -> tuple[str, str]:
    """(the tsquery of ``term`` as an SQL expression, its parameter): its forms OR-ed in
    websearch syntax ("go or went or gone": 'go' | 'went' | 'gone') when it has several,
    else plainto (a hyphenated word is all of its parts, not a phrase). Both are immutable,
    so the planner folds the query into a constant and estimates its selectivity."""
    found = forms(term)
    function = "websearch_to_tsquery" if len(found) > 1 else "plainto_tsquery"
    return f"{function}('{PG_TEXT_CONFIG}', %s)", " or ".join(found)


def _pg_query(terms: list[str]) -> tuple[str, list]:
    """The tsquery matching every one of ``terms`` in any of its forms (:func:`_pg_term`)."""
    if not terms:
        return f"plainto_tsquery('{PG_TEXT_CONFIG}', '')", []
    parts, params = zip(*(_pg_term(term) for term in terms), strict=True)
    return f"({' && '.join(parts)})", list(params)


# FTS5 reads a term of several words ("a.b.c", a URL) as a phrase, at a cost of its length
# times its words' matches, over every account's rows: "a.a.a..." of 5,000 words took 79 s.
# A phrase is matched by its first PHRASE_WORDS words (a URL still finds its memory by them).
PHRASE_WORDS = 16
_FTS_WORD = re.compile(r"[^\W_]+")  # what the unicode61 tokenizer keeps as words


def _fts_phrase(form: str) -> str:
    words = _FTS_WORD.findall(form)
    return " ".join(words[:PHRASE_WORDS]) if len(words) > PHRASE_WORDS else form


def _fts_term(term: str) -> str:
    """One term in FTS5 query syntax: a quoted string, or its forms OR-ed."""
    quoted = ['"' + _fts_phrase(form).replace('"', '""') + '"' for form in forms(term)]
    return quoted[0] if len(quoted) == 1 else f"({' OR '.join(quoted)})"


def _match_where(model, terms: list[str]) -> tuple[str, list]:
    """The condition "the row's indexed text matches every one of ``terms``", each in any
    of its forms (:func:`.wordforms.forms`)."""
    table = model._meta.db_table
    if is_postgres():
        query, params = _pg_query(terms)
        return f'"{table}".search_vector @@ {query}', params
    fts = fts_table(model)
    return (f'"{table}".rowid IN (SELECT rowid FROM {fts} WHERE {fts} MATCH %s)',
            [" AND ".join(_fts_term(term) for term in terms)])


def _lookups_sql(queryset, lookups: list[tuple[list[str], int]]) -> tuple[str, list]:
    """``SELECT n, id`` of each lookup's capped matches, as one ``UNION ALL``."""
    parts, params = [], []
    for n, (terms, cap) in enumerate(lookups):
        sql, sub_params = _match_sql(queryset, terms, cap)
        parts.append(f"SELECT {n} AS lookup, _k{n}.* FROM ({sql}) AS _k{n}")
        params.extend(sub_params)
    return " UNION ALL ".join(parts), params


def _match_sql(queryset, terms: list[str], cap: int) -> tuple[str, list]:
    """``SELECT pk`` of up to ``cap`` rows of ``queryset`` matching every one of ``terms``."""
    where, text = _match_where(queryset.model, terms)
    return (queryset.order_by().extra(where=[where], params=text)
            .values_list("pk", flat=True)[:cap].query.sql_with_params())


def _scan_from_the_first_page(queryset) -> None:
    """PostgreSQL: this transaction's sequential scans start at the table's first page. The
    planner reads a term found in a large share of the rows by a sequential scan that stops
    after ``cap`` matches; by default (``synchronize_seqscans``) a scan of a table larger
    than a quarter of ``shared_buffers`` starts near where earlier scans were, so the same
    query got other matches each time (other results, read from pages out of the cache)
    from about 100k memories on."""
    if is_postgres():
        with connections[queryset.db].cursor() as cursor:
            cursor.execute("SET LOCAL synchronize_seqscans = off")


def _fetch_lookups(queryset, sql: str, params: list, lookups: int) -> list[list]:
    found: list[list] = [[] for _ in range(lookups)]
    to_python = queryset.model._meta.pk.to_python
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        for n, pk in cursor.fetchall():
            found[n].append(to_python(pk))
    return found


# --- migration operations -------------------------------------------------------------------

PG_FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS vector",
]


def fts_table(model) -> str:
    """The SQLite FTS5 table of a searchable model: ``memory_fts``, ``decision_fts``, …"""
    return f"{model._meta.model_name}_fts"


class SearchIndex:
    """The text and vector indexes of one searchable table: on PostgreSQL a generated
    ``search_vector`` tsvector over ``columns`` with a GIN index and an HNSW cosine index on
    ``embedding``; on SQLite an FTS5 table ``<name>_fts`` over ``columns`` kept in step by
    triggers. Use ``forward``/``backward`` as a migration's RunPython pair."""

    def __init__(self, *, table: str, name: str, columns: list[str]):
        self.table, self.name, self.columns = table, name, columns

    def pg_forward(self) -> list[str]:
        text = " || ' ' || ".join(self.columns)
        return [
            f"ALTER TABLE {self.table} ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            f"(to_tsvector('{PG_TEXT_CONFIG}', {text})) STORED",
            f"CREATE INDEX {self.name}_search_vector_gin ON {self.table} "
            "USING gin (search_vector)",
            f"CREATE INDEX {self.name}_embedding_hnsw ON {self.table} "
            "USING hnsw (embedding vector_cosine_ops)",
        ]

    def pg_backward(self) -> list[str]:
        return [
            f"DROP INDEX IF EXISTS {self.name}_embedding_hnsw",
            f"DROP INDEX IF EXISTS {self.name}_search_vector_gin",
            f"ALTER TABLE {self.table} DROP COLUMN IF EXISTS search_vector",
        ]

    def sqlite_forward(self) -> list[str]:
        fts, cols = f"{self.name}_fts", ", ".join(self.columns)
        new = ", ".join(f"new.{c}" for c in self.columns)
        old = ", ".join(f"old.{c}" for c in self.columns)
        delete = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.rowid, {old});"
        insert = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.rowid, {new});"
        return [
            f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{self.table}', "
            "content_rowid='rowid', tokenize='porter unicode61')",
            f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {self.table} BEGIN {insert} END",
            f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {self.table} BEGIN {delete} END",
            f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {cols} ON {self.table} BEGIN "
            f"{delete} {insert} END",
            f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
        ]

    def sqlite_backward(self) -> list[str]:
        fts = f"{self.name}_fts"
        return [*(f"DROP TRIGGER IF EXISTS {fts}_{event}" for event in
                  ("insert", "delete", "update")), f"DROP TABLE IF EXISTS {fts}"]

    def forward(self, apps, schema_editor) -> None:
        postgres = schema_editor.connection.vendor == "postgresql"
        _run(schema_editor, self.pg_forward() if postgres else self.sqlite_forward())

    def backward(self, apps, schema_editor) -> None:
        postgres = schema_editor.connection.vendor == "postgresql"
        _run(schema_editor, self.pg_backward() if postgres else self.sqlite_backward())


MEMORY_INDEX = SearchIndex(table="memories_app_memory", name="memory", columns=["content"])


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


# The memories' full-text index holds live memories only (a partial GIN index): a term's
# matches are never deleted rows read and dropped. The account stays a filter on the rows
# read: a (account_id, search_vector) GIN index (btree_gin) was measured too, and at 1M
# memories in one account it cost 20-40 ms per term instead of about 1 ms, its account key
# being a posting tree of every row the scan had to walk.
LIVE_TEXT_INDEX = "memory_live_text_gin"
_CREATE_LIVE_TEXT = (f"CREATE INDEX IF NOT EXISTS {LIVE_TEXT_INDEX} ON memories_app_memory "
                     "USING gin (search_vector) WHERE deleted_at IS NULL")
# Room left in each heap page (fillfactor 85) so that the frequent small updates of a
# memory (last_accessed_at after a read, tier) are HOT: the new row version goes on the same
# page and no index, above all the HNSW graph, gets a new entry (a non-HOT update of ten
# rows took 80-330 ms at 1M memories). It applies to pages written from now on.
PG_LIVE_TEXT_FORWARD = [
    "ALTER TABLE memories_app_memory SET (fillfactor = 85)",
    _CREATE_LIVE_TEXT,
    "DROP INDEX IF EXISTS memory_search_vector_gin",
]
PG_LIVE_TEXT_BACKWARD = [
    "ALTER TABLE memories_app_memory RESET (fillfactor)",
    "CREATE INDEX IF NOT EXISTS memory_search_vector_gin ON memories_app_memory "
    "USING gin (search_vector)",
    f"DROP INDEX IF EXISTS {LIVE_TEXT_INDEX}",
]
# A database migrated while 0007 built the (account_id, search_vector) index instead.
PG_ACCOUNT_TEXT_DROP = [_CREATE_LIVE_TEXT, "DROP INDEX IF EXISTS memory_live_search_gin"]


def create_live_text_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        _run(schema_editor, PG_LIVE_TEXT_FORWARD)


def drop_live_text_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        _run(schema_editor, PG_LIVE_TEXT_BACKWARD)


def drop_account_text_index(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        _run(schema_editor, PG_ACCOUNT_TEXT_DROP)


def create_search_indexes(apps, schema_editor) -> None:
    MEMORY_INDEX.forward(apps, schema_editor)


def drop_search_indexes(apps, schema_editor) -> None:
    MEMORY_INDEX.backward(apps, schema_editor)
