"""The kinds of row a backup holds, in file order, and what the import checks for each.

Adding a model to the backup is one entry here: its links (checked against the rows listed
before it), the fields unique among live rows, the database's check constraints as plain
rules (so a bad line names its number instead of failing the transaction), and the API's
input serializers whose fields hold each value to the limits a write through the API is
held to (a restored row is one the API could have written)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import models
from rest_framework.exceptions import ValidationError

from entities_app.models import Entity
from entities_app.names import entity_key
from entities_app.serializers import EntityUpdateInput
from knowledge_app.models import Decision, DecisionStatus, Pattern, PatternAdoption
from knowledge_app.serializers import DecisionRecordInput, PatternCreateInput
from memories_app.models import Memory
from memories_app.serializers import MemoryCreateInput
from sessions_app.models import (
    SLUG_PATTERN,
    Agent,
    Project,
    ProjectRelationship,
    Session,
    SessionStatus,
)
from sessions_app.serializers import (
    AgentUpdateInput,
    ProjectRelationshipInput,
    ProjectUpdateInput,
    SessionCreateInput,
    SessionEndInput,
)

from .codec import fields_of


@dataclass(frozen=True)
class Kind:
    name: str
    model: type[models.Model]
    plural: str
    # (field, kind): the id of a row of that kind and of the same account, listed before.
    links: tuple[tuple[str, str], ...] = ()
    # Links that may also name a row listed after (written once every row is in).
    forward: tuple[str, ...] = ()
    # Fields whose values are unique among the account's live rows.
    unique: tuple[str, ...] = ()
    since: int = 1  # the format version that brought it
    # The API's input serializers (as the admin checks an edit): each of their fields named
    # as a field of the line, links aside, checks its value; but those of ``api_skip``,
    # which the file holds otherwise (any decision status, not only those one records).
    api: tuple[type, ...] = ()
    api_skip: tuple[str, ...] = ()

    @property
    def soft_deleted(self) -> bool:
        return any(f.name == "deleted_at" for f in self.model._meta.concrete_fields)

    @property
    def embedded(self) -> bool:
        return any(f.name == "embedding" for f in self.model._meta.concrete_fields)


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("agent", Agent, "agents", unique=("name",), api=(AgentUpdateInput,)),
    Kind("session", Session, "sessions", links=(("agent_id", "agent"),),
         unique=("external_id",), api=(SessionCreateInput, SessionEndInput)),
    Kind("project", Project, "projects", unique=("slug",), since=2, api=(ProjectUpdateInput,)),
    Kind("project_relationship", ProjectRelationship, "project relationships",
         links=(("source_id", "project"), ("target_id", "project")),
         unique=("source_id", "target_id", "relationship_type"), since=2,
         api=(ProjectRelationshipInput,)),
    # Before memories: each memory line lists its links to them (links.py).
    Kind("entity", Entity, "entities", unique=("key", "entity_type"), since=3,
         api=(EntityUpdateInput,)),
    Kind("memory", Memory, "memories", links=(("agent_id", "agent"), ("session_id", "session")),
         api=(MemoryCreateInput,)),
    Kind("decision", Decision, "decisions",
         links=(("agent_id", "agent"), ("session_id", "session"),
                ("superseded_by_id", "decision")),
         forward=("superseded_by_id",), since=2, api=(DecisionRecordInput,),
         api_skip=("status",)),
    Kind("pattern", Pattern, "patterns", links=(("source_project_id", "project"),), since=2,
         api=(PatternCreateInput,)),
    Kind("pattern_adoption", PatternAdoption, "pattern adoptions",
         links=(("pattern_id", "pattern"), ("project_id", "project")),
         unique=("pattern_id", "project_id"), since=2),
)}
# Kinds other rows link to: their ids (and accounts) are kept while a file is read (entities:
# a memory line's entity_links name them).
TARGETS = {target for kind in KINDS.values() for _, target in kind.links} | {"entity"}


def kinds_of(version: int) -> list[str]:
    return [name for name, kind in KINDS.items() if kind.since <= version]


def api_fields(kind: str) -> dict:
    """The API's serializer fields that check the values of a line of ``kind``, by the
    line's field name (built once per file read)."""
    spec = KINDS[kind]
    columns = {f.attname: f for f in fields_of(spec.model)}
    found = {}
    for api in spec.api:
        for name, field in api().fields.items():
            column = columns.get(name)
            if column is not None and not column.primary_key and not column.is_relation \
                    and name not in spec.api_skip:
                found.setdefault(name, field)
    return found


def api_refusal(fields: dict, record: dict) -> str | None:
    """What the API would say of the first value of ``record`` it refuses, or None.
    ``fields``: :func:`api_fields`. A null is the model's to judge (it is read first)."""
    for name, field in fields.items():
        value = record.get(name)
        if value is None:
            continue
        try:
            field.run_validation(value)
        except ValidationError as exc:
            return _first_error(name, exc.detail)
    return None


def _first_error(where: str, detail) -> str:
    """``tags[3]: Ensure this field has no more than 100 characters.``"""
    while isinstance(detail, (dict, list)):
        if isinstance(detail, dict):
            key, detail = next(iter(detail.items()))
            where += f"[{key}]"
        else:
            detail = detail[0]
    return f"{where}: {detail}"


def derive(kind: str, obj) -> None:
    """Sets the fields the file leaves out because they follow from the others."""
    if kind == "project":
        obj.live_slug = obj.slug if obj.deleted_at is None else None
    if kind == "entity":  # this server's key of the name (the file's may be older)
        obj.key = entity_key(obj.name)


def rule_broken(kind: str, obj) -> str | None:
    """The check constraints of the models, tested here so a bad line names its number."""
    if kind == "memory" and not 0.0 <= obj.importance <= 1.0:
        return "importance must be between 0 and 1"
    if kind == "session":
        if (obj.status == SessionStatus.ENDED) != (obj.ended_at is not None):
            return "an ended session needs ended_at, an active one must not have it"
        if obj.ended_at is not None and obj.ended_at < obj.started_at:
            return "ended_at is before started_at"
    if kind == "project" and not re.fullmatch(SLUG_PATTERN, obj.slug):
        return "slug must be lowercase letters, digits and hyphens"
    if kind == "project_relationship" and obj.source_id == obj.target_id:
        return "a project cannot be related to itself"
    if kind == "decision" and obj.superseded_by_id is not None:
        if obj.status != DecisionStatus.SUPERSEDED:
            return "a decision with superseded_by must have the status superseded"
        if obj.superseded_by_id == obj.id:
            return "a decision cannot supersede itself"
    return None
