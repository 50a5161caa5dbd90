"""What a project's knowledge looks like from several apps at once: its context for an LLM
(hot memories, active decisions, adopted patterns and a markdown digest of them), the
impact of a change on the projects downstream of it, and the patterns two projects share.

These compose the sessions app (projects and their relationships), the memories app
(memories and their search) and this app, so they live here, the highest app they need."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from memories_app import search
from memories_app.models import Memory, Tier, Visibility
from sessions_app.models import DEPENDENCY_TYPES, Project, ProjectRelationship
from sessions_app.projects import project_get

from .models import Decision, DecisionStatus, Pattern
from .services import search_rows

# The context's bounds: at most this many of each kind, each text cut at ITEM_CHARS in the
# markdown, and the whole markdown at most CONTEXT_MAX_CHARS (about 4,000 tokens).
CONTEXT_ITEMS = 20
ITEM_CHARS = 500
CONTEXT_MAX_CHARS = 16_000

# Impact analysis: the downstream projects examined (nearest first) and the hits kept for
# each of them.
IMPACT_MAX_PROJECTS = 25
IMPACT_HITS = 5


def _project_memories(account, slug: str):
    """The live memories labelled with the project, without confidential ones (what an LLM
    may be shown)."""
    return (Memory.objects.live().for_account(account).filter(project=slug)
            .exclude(visibility=Visibility.CONFIDENTIAL))


# --- context ------------------------------------------------------------------------------


@dataclass
class ProjectContext:
    project: Project
    hot_memories: list
    active_decisions: list
    adopted_patterns: list
    context: str = ""
    truncated: bool = False


def project_context(*, account, slug: str) -> ProjectContext:
    """The project's hot-tier memories (most important first), its active decisions and
    the patterns it adopted (newest first), at most CONTEXT_ITEMS of each, with the markdown
    ``context`` built from them within CONTEXT_MAX_CHARS."""
    project = project_get(account=account, slug=slug,
                          queryset=Project.objects.with_memory_count())
    memories = list(
        _project_memories(account, slug).filter(tier=Tier.HOT).without_vectors()
        .with_project_id().order_by("-importance", "-created_at", "-id")[:CONTEXT_ITEMS])
    decisions = list(
        Decision.objects.live().for_account(account).without_vectors()
        .filter(project_slug=slug, status=DecisionStatus.ACTIVE)[:CONTEXT_ITEMS])
    patterns = list(Pattern.objects.live().for_account(account).without_vectors()
                    .adopted_by(project).with_adoption_count()[:CONTEXT_ITEMS])
    result = ProjectContext(project, memories, decisions, patterns)
    result.context, result.truncated = _markdown(result)
    return result


def _cut(text: str, limit: int = ITEM_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _markdown(ctx: ProjectContext) -> tuple[str, bool]:
    """The digest, section by section; an item that would pass CONTEXT_MAX_CHARS is left
    out (and ``truncated`` says so)."""
    project = ctx.project
    head = [f"# Project: {project.name} (`{project.slug}`)"]
    if project.description:
        head.append(_cut(project.description))
    if project.stack:
        head.append("Stack: " + _cut(json.dumps(project.stack, ensure_ascii=False)))
    sections = [
        ("## Key memories", [f"- {_cut(m.content)}" for m in ctx.hot_memories]),
        ("## Active decisions", [
            f"- **{_cut(d.title, 200)}**: {_cut(d.rationale)}" for d in ctx.active_decisions]),
        ("## Adopted patterns", [
            f"- **{_cut(p.title, 200)}**" + (f" ({p.category})" if p.category else "")
            + f": {_cut(p.description)}" for p in ctx.adopted_patterns]),
    ]
    lines, truncated = list(head), False
    size = sum(len(line) + 1 for line in lines)
    for title, items in sections:
        if not items:
            continue
        for line in ["", title, *items]:
            if size + len(line) + 1 > CONTEXT_MAX_CHARS:
                truncated = True
                break
            lines.append(line)
            size += len(line) + 1
    return "\n".join(lines), truncated


# --- impact analysis ----------------------------------------------------------------------


@dataclass
class Affected:
    project: Project
    depth: int
    via: list[str]  # relationship types of the edges that reach it from its upstream
    decisions: list = field(default_factory=list)
    memories: list = field(default_factory=list)


def project_impact(*, account, slug: str, change: str, threshold: float = 0.3
                   ) -> tuple[Project, list[Affected]]:
    """The projects that depend on ``slug`` (``depends_on`` or ``api_consumer`` it),
    transitively, nearest first (a cycle is walked once), each with its in-force decisions
    and memories most related to ``change`` by the hybrid search of memories (one query
    embedding for all of them)."""
    project = project_get(account=account, slug=slug)
    affected = _downstream(account, project)[:IMPACT_MAX_PROJECTS]
    vector = search.embed_query(change)
    for item in affected:
        label = item.project.slug
        item.decisions = search_rows(
            Decision.objects.live().for_account(account).in_force().filter(project_slug=label),
            text=change, limit=IMPACT_HITS, threshold=threshold, vector=vector)
        item.memories = search_rows(_project_memories(account, label), text=change,
                                    limit=IMPACT_HITS, threshold=threshold, vector=vector)
        for hit in item.memories:  # the label names this live project: its id, no query
            hit.item.registered_project_pk = item.project.pk
    affected.sort(key=lambda a: (a.depth, -max([h.score for h in a.decisions + a.memories],
                                               default=0.0), a.project.slug))
    return project, affected


def _downstream(account, root: Project) -> list[Affected]:
    """Breadth-first over the account's visible dependency edges, read in one query: a
    project's dependents are the sources of the edges that target it."""
    edges = (ProjectRelationship.objects.visible().filter(
        account=account, relationship_type__in=DEPENDENCY_TYPES).select_related("source"))
    dependents: dict = {}
    for edge in edges:
        dependents.setdefault(edge.target_id, []).append(edge)
    seen, found = {root.pk}, {}
    queue = deque([(root.pk, 0)])
    while queue:
        pk, depth = queue.popleft()
        for edge in dependents.get(pk, []):
            if edge.source_id in found and found[edge.source_id].depth == depth + 1:
                found[edge.source_id].via.append(edge.relationship_type)
            if edge.source_id in seen:
                continue
            seen.add(edge.source_id)
            found[edge.source_id] = Affected(edge.source, depth + 1, [edge.relationship_type])
            queue.append((edge.source_id, depth + 1))
    return sorted(found.values(), key=lambda a: (a.depth, a.project.slug))


# --- shared patterns ----------------------------------------------------------------------


def patterns_shared(*, account, slug_a: str, slug_b: str) -> tuple[Project, Project, list]:
    """The live patterns both projects adopted, newest first (a missing project is a
    NotFound)."""
    a = project_get(account=account, slug=slug_a)
    b = project_get(account=account, slug=slug_b)
    patterns = list(Pattern.objects.live().for_account(account).without_vectors()
                    .adopted_by(a).adopted_by(b).with_adoption_count())
    return a, b, patterns
