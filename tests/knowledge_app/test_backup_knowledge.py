"""Backups keep projects, their relationships, decisions (with their supersede chains),
patterns and adoptions: a restore loses nothing a user stored."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model

from entities_app.models import Entity
from entities_app.services import entity_get_or_create
from knowledge_app.backup import ImportRefused
from knowledge_app.models import Decision, DecisionStatus, Pattern, PatternAdoption
from knowledge_app.services import (
    decision_delete,
    decision_record,
    decision_supersede,
    pattern_adopt,
    pattern_create,
    pattern_delete,
)
from memories_app.embeddings import get_provider
from memories_app.models import Memory
from memories_app.services import memory_create
from sessions_app.models import Agent, Project, ProjectRelationship
from sessions_app.projects import (
    project_create,
    project_delete,
    project_relate,
    relationship_delete,
)
from sessions_app.services import session_create

from .test_backup import (
    by_kind,
    corrupt,
    edit,
    export,
    lines_of,
    listed_twice,
    records,
    run_import,
    snapshot,
    wipe,
)

User = get_user_model()


@pytest.fixture
def knowledge(account, other_account):
    """Live and deleted projects (one slug registered twice), relationships, a chain of
    three decisions, patterns adopted by two projects, and another account's rows."""
    north = project_create(account=account, slug="northrelay", name="NorthRelay",
                           stack={"lang": "python"}, metadata={"team": "core"})
    gateway = project_create(account=account, slug="api-gateway", name="Gateway")
    old = project_create(account=account, slug="legacy", name="Legacy v1")
    project_relate(project=old, target_slug="northrelay", relationship_type="forked_from")
    project_delete(project=old)
    legacy = project_create(account=account, slug="legacy", name="Legacy v2")
    project_relate(project=gateway, target_slug="northrelay", relationship_type="depends_on")
    edge, _ = project_relate(project=legacy, target_slug="api-gateway",
                             relationship_type="api_consumer")
    relationship_delete(relationship=edge)
    session = session_create(account=account, agent_ref="planner", project="northrelay")
    first = decision_record(account=account, title="Use SQLite", rationale="Simple to run",
                            agent_ref="planner", session_id=session.id,
                            project_slug="northrelay", tags=["database"])
    second = decision_supersede(account=account, decision=first, title="Use PostgreSQL",
                                rationale="pgvector and JSONB")
    decision_supersede(account=account, decision=second, title="Use PostgreSQL 16",
                       rationale="The HNSW index needs it", status="experimental")
    decision_delete(decision=decision_record(account=account, title="Drop tests",
                                             rationale="Never"))
    errors = pattern_create(account=account, title="Errors follow RFC 7807",
                            description="problem+json everywhere", scope="project",
                            source_project="northrelay", tags=["api"])
    for slug in ("northrelay", "api-gateway", "legacy"):
        pattern_adopt(account=account, pattern=errors, project_slug=slug)
    pattern_create(account=account, title="Keyset pagination", description="No offsets")
    gone = pattern_create(account=account, title="Offsets", description="Slow")
    pattern_adopt(account=account, pattern=gone, project_slug="api-gateway")
    pattern_delete(pattern=gone)
    project_create(account=other_account, slug="northrelay", name="Mallory's NorthRelay")
    decision_record(account=other_account, title="Mallory decides", rationale="Because")
    return {"north": north, "legacy": legacy, "old": old, "errors": errors, "first": first,
            "second": second}


COUNTS = {"account": 2, "agent": 1, "session": 1, "project": 5, "project_relationship": 3,
          "decision": 5, "pattern": 3, "pattern_adoption": 4}


def adoption_counts() -> dict[str, int]:
    return dict(Pattern.objects.with_adoption_count().values_list("title", "adoption_count"))


def test_projects_relationships_decisions_patterns_and_adoptions_come_back_exactly(knowledge):
    before, counts = snapshot(), adoption_counts()
    text = export()
    wipe()
    assert not Project.objects.exists() and not Decision.objects.exists()
    report = run_import(text)
    assert snapshot() == before  # every field, ids, timestamps, deletions and vectors
    assert report.created == by_kind(**COUNTS)
    assert adoption_counts() == counts == {"Errors follow RFC 7807": 3, "Keyset pagination": 0,
                                           "Offsets": 1}


def test_a_restored_project_is_found_by_its_slug_only_while_live(knowledge):
    text = export()
    wipe()
    run_import(text)
    account = User.objects.get(username="alice")  # created again by the import
    legacy = Project.objects.for_account(account).by_slug("legacy").get()
    assert legacy.pk == knowledge["legacy"].pk and legacy.live_slug == "legacy"
    old = Project.objects.get(pk=knowledge["old"].pk)
    assert old.deleted_at is not None and old.live_slug is None
    assert all("live_slug" not in item for item in records(text))  # derived, not stored
    north = Project.objects.for_account(account).with_memory_count().get(slug="northrelay")
    assert [r.relationship_type for r in ProjectRelationship.objects.visible()
            .filter(target=north)] == ["depends_on"]


def test_a_chain_of_superseded_decisions_is_restored_link_for_link(knowledge):
    text = export()
    items = records(text)
    line_of = {i.get("id"): n for n, i in enumerate(items, 1)}
    superseded = [i for i in items if i["kind"] == "decision" and i["superseded_by_id"]]
    assert len(superseded) == 2  # each names a decision listed after it
    assert all(line_of[i["superseded_by_id"]] > line_of[i["id"]] for i in superseded)
    wipe()
    run_import(text)
    first = Decision.objects.get(pk=knowledge["first"].pk)
    second, third = first.superseded_by, first.superseded_by.superseded_by
    assert (first.status, second.status) == (DecisionStatus.SUPERSEDED,) * 2
    assert second.pk == knowledge["second"].pk and third.superseded_by is None
    assert third.title == "Use PostgreSQL 16" and third.supersedes == second


def test_a_supersede_link_to_a_decision_written_in_a_later_chunk_holds(knowledge,
                                                                       monkeypatch):
    from knowledge_app.backup import importer

    before = snapshot()
    text = export()
    wipe()
    monkeypatch.setattr(importer, "CHUNK", 1)
    run_import(text)
    assert snapshot() == before


def test_importing_the_knowledge_twice_updates_and_never_duplicates(knowledge):
    text = export()
    wipe()
    run_import(text)
    once, counts = snapshot(), adoption_counts()
    again = run_import(text)
    assert snapshot() == once and adoption_counts() == counts
    assert again.created == by_kind() and again.updated == by_kind(account=COUNTS["account"])
    assert again.kept == by_kind(**{**COUNTS, "account": 0})


def test_importing_over_the_live_server_keeps_a_project_deleted_since(knowledge, account):
    text = export()
    project_delete(project=knowledge["north"])
    run_import(text)
    assert not Project.objects.for_account(account).by_slug("northrelay").exists()


def test_an_overwriting_import_brings_back_a_deleted_project_and_decision(knowledge, account):
    text = export()
    project_delete(project=knowledge["north"])
    Decision.objects.filter(pk=knowledge["first"].pk).update(superseded_by=None,
                                                            status="reverted")
    run_import(text, overwrite=True)
    assert Project.objects.for_account(account).by_slug("northrelay").get().live_slug == (
        "northrelay")
    first = Decision.objects.get(pk=knowledge["first"].pk)
    assert first.superseded_by_id == knowledge["second"].pk and first.status == "superseded"


# --- refusing a bad file ---------------------------------------------------------------------


def nth(items: list[dict], kind: str, n: int = 0, account: str = "alice") -> int:
    """The line number of the n-th line of that kind of that account."""
    numbers = [k for k, i in enumerate(items, 1)
               if i["kind"] == kind and i.get("account") == account]
    return numbers[n]


def first_id(items, kind, account="alice", n=0):
    return items[nth(items, kind, n, account) - 1]["id"]


BAD = {
    "a supersede link to no decision": (
        "decision", 0, lambda items: edit(superseded_by_id=str(uuid.uuid4())),
        "is not a decision of account 'alice' in this file"),
    "a supersede link to another account's decision": (
        "decision", 0, lambda items: edit(superseded_by_id=first_id(items, "decision",
                                                                    "mallory")),
        "superseded_by_id"),
    "a superseded_by on an active decision": (
        "decision", 0, lambda items: edit(status="active"), "must have the status superseded"),
    "two decisions superseded by one": (
        "decision", 3, lambda items: edit(superseded_by_id=items[nth(
            items, "decision", 0) - 1]["superseded_by_id"], status="superseded"),
        "is named by another decision too"),
    "a decision superseding itself": (
        "decision", 3, lambda items: edit(superseded_by_id=first_id(items, "decision", n=3),
                                          status="superseded"), "cannot supersede itself"),
    "a bad decision status": ("decision", 2, lambda items: edit(status="maybe"), "status"),
    "a project slug that is no slug": (
        "project", 0, lambda items: edit(slug="Not A Slug"), "slug must be lowercase"),
    "two live projects with one slug": (
        "project", 1, lambda items: edit(slug="northrelay"),
        "two live projects of 'alice' have the slug 'northrelay'"),
    "a derived live_slug": ("project", 0, lambda items: edit(live_slug="x"),
                            "unknown field 'live_slug'"),
    "a relationship to an unknown project": (
        "project_relationship", 0, lambda items: edit(target_id=str(uuid.uuid4())),
        "target_id"),
    "a relationship to itself": (
        "project_relationship", 1, lambda items: edit(
            target_id=items[nth(items, "project_relationship", 1) - 1]["source_id"]),
        "cannot be related to itself"),
    "a bad relationship type": ("project_relationship", 1,
                                lambda items: edit(relationship_type="likes"),
                                "relationship_type"),
    "a pattern of an unknown source project": (
        "pattern", 0, lambda items: edit(source_project_id=str(uuid.uuid4())),
        "source_project_id"),
    "a bad pattern scope": ("pattern", 0, lambda items: edit(scope="galaxy"), "scope"),
    "an adoption of another account's project": (
        "pattern_adoption", 0, lambda items: edit(project_id=first_id(items, "project",
                                                                      "mallory")),
        "project_id"),
    "a pattern adopted twice by one project": (
        "pattern_adoption", 1, lambda items: edit(
            project_id=items[nth(items, "pattern_adoption", 0) - 1]["project_id"]),
        "two live pattern adoptions of 'alice' have the same pattern_id"),
    "a short decision vector": ("decision", 0, lambda items: edit(embedding="AAAA"),
                                "384 finite"),
}


@pytest.mark.parametrize("slug", ["impact-analysis", "shared-patterns"])
def test_a_project_slug_an_older_release_took_is_restored_not_refused(knowledge, slug):
    """Releases before these paths existed let a project take them: a backup of such a
    server restores (the project stays listed, and in the admin and the next backup),
    instead of the whole file being refused."""
    items = records(export())
    number = nth(items, "project", 0)
    taken = corrupt(lines_of(items), number, edit(slug=slug))
    wipe()
    run_import(taken)
    assert Project.objects.filter(slug=slug).exists()
    assert Decision.objects.exists() and PatternAdoption.objects.exists()


@pytest.mark.parametrize("case", BAD)
def test_a_bad_knowledge_line_is_refused_with_its_number_and_nothing_is_imported(
        knowledge, case):
    kind, n, change, message = BAD[case]
    items = records(export())
    number = nth(items, kind, n)
    bad = corrupt(lines_of(items), number, change(items))
    wipe()
    with pytest.raises(ImportRefused) as refused:
        run_import(bad)
    assert refused.value.message.startswith(f"line {number}: "), refused.value.message
    assert message in refused.value.message
    assert not User.objects.exists() and not Project.objects.exists()
    assert not Decision.objects.exists() and not PatternAdoption.objects.exists()


# A value of each kind that the API refuses (its serializers' limits), so a restore cannot
# hold a row that no write through the API could have made: (kind, field, value, message).
OVER_THE_APIS_LIMITS = {
    "an agent description over 1,000 characters": (
        "agent", "description", "d" * 1001, "no more than 1000 characters"),
    "a blank agent name": ("agent", "name", "   ", "may not be blank"),
    "agent config over 10 KB": ("agent", "config", {"k": "x" * 10_240},
                                "at most 10240 bytes as JSON"),
    "an empty external id": ("session", "external_id", "", "may not be blank"),
    "a session summary over 50,000 characters": (
        "session", "summary", "s" * 50_001, "no more than 50000 characters"),
    "a project description over 5,000 characters": (
        "project", "description", "p" * 5001, "no more than 5000 characters"),
    "a project stack over 10 KB": ("project", "stack", {"k": "x" * 10_240}, "10240 bytes"),
    "relationship metadata 33 levels deep": (
        "project_relationship", "metadata", {"a": json.loads("[" * 32 + "]" * 32)},
        "at most 32 levels deep"),
    "entity metadata over 10 KB": ("entity", "metadata", {"k": "x" * 10_240}, "10240 bytes"),
    "memory content over 50,000 characters": (
        "memory", "content", "c" * 50_001, "no more than 50000 characters"),
    "memory content of whitespace only": ("memory", "content", " \n\t ", "must not be blank"),
    "memory metadata over 10 KB": ("memory", "metadata", {"k": "x" * 10_240}, "10240 bytes"),
    "21 decision tags": ("decision", "tags", [f"t{n}" for n in range(21)],
                         "no more than 20 elements"),
    "a decision tag over 100 characters": ("decision", "tags", ["ok", "t" * 101],
                                           "tags[1]: Ensure this field has no more than 100"),
    "a decision tag that is no string": ("decision", "tags", [7], "tags[0]: Not a valid"),
    "a blank decision title": ("decision", "title", "   ", "must not be blank"),
    "a decision rationale over 50,000 characters": (
        "decision", "rationale", "r" * 50_001, "no more than 50000 characters"),
    "pattern example code over 50,000 characters": (
        "pattern", "example_code", "e" * 50_001, "no more than 50000 characters"),
    "an empty pattern tag": ("pattern", "tags", [""], "tags[0]: This field may not be blank"),
}


@pytest.fixture
def every_kind(knowledge, account):
    entity_get_or_create(account=account, name="Acme Corp", entity_type="organization")
    memory_create(account=account, agent_ref="planner", content="Deploys run on Fridays")


@pytest.mark.parametrize("case", OVER_THE_APIS_LIMITS)
def test_a_value_the_api_refuses_is_refused_naming_its_line_and_field(every_kind, case):
    """Import took any value the model's columns hold: memory content of a megabyte,
    50 tags, metadata far past 10 KB, a blank title... rows no write through the API could
    make. Each line is held to the API's own serializer fields, dry run included."""
    kind, name, value, message = OVER_THE_APIS_LIMITS[case]
    items = records(export(account="alice"))
    number = nth(items, kind)
    bad = corrupt(lines_of(items), number, edit(**{name: value}))
    wipe()
    for dry_run in (True, False):
        with pytest.raises(ImportRefused) as refused:
            run_import(bad, dry_run=dry_run)
        assert refused.value.message.startswith(f"line {number}: {name}"), refused.value.message
        assert message in refused.value.message
    assert not User.objects.exists() and not Memory.objects.exists()
    assert not Entity.objects.exists() and not Decision.objects.exists()


def test_values_at_the_apis_limits_are_restored(every_kind):
    items = records(export(account="alice"))
    at_limits = {"memory": {"content": "c" * 50_000, "metadata": {"k": "x" * 10_232}},
                 "decision": {"tags": [f"{n:0>100}" for n in range(20)],
                              "rationale": "r" * 50_000},
                 "agent": {"description": "d" * 1000}, "session": {"summary": "s" * 50_000}}
    text = lines_of(items)
    for kind, values in at_limits.items():
        text = corrupt(text, nth(items, kind), edit(**values))
    wipe()
    run_import(text, dry_run=True)
    run_import(text)
    assert len(Memory.objects.get(pk=items[nth(items, "memory") - 1]["id"]).content) == 50_000
    assert len(Decision.objects.get(pk=items[nth(items, "decision") - 1]["id"]).tags) == 20


def test_a_slug_taken_again_since_the_file_keeps_the_deletion_and_refuses_an_overwrite(
        knowledge, account):
    text = export(account="alice")
    project_delete(project=knowledge["legacy"])
    newcomer = project_create(account=account, slug="legacy", name="Legacy v3")
    report = run_import(text)  # the deleted copy here is newer: kept, so the slug is free
    assert Project.objects.get(pk=knowledge["legacy"].pk).deleted_at is not None
    assert Project.objects.by_slug("legacy").get().pk == newcomer.pk
    assert report.kept["project"] == sum(i["kind"] == "project" for i in records(text))
    number = next(n for n, i in enumerate(records(text), 1)
                  if i.get("id") == str(knowledge["legacy"].pk))
    with pytest.raises(ImportRefused, match=f"line {number}: the slug 'legacy' is taken by "
                                            f"the live project {newcomer.pk}"):
        run_import(text, overwrite=True)  # the file's live copy would take it back
    assert Project.objects.get(pk=knowledge["legacy"].pk).deleted_at is not None


def test_a_name_reused_since_the_file_does_not_refuse_an_older_file(account):
    from memories_app.services import memory_create
    from sessions_app.services import agent_update

    memory_create(account=account, agent_ref="old-bot", content="kept")
    text = export(account="alice")
    old = Agent.objects.get(name="old-bot")
    agent_update(agent=old, changes={"name": "older-bot"})
    memory_create(account=account, agent_ref="old-bot", content="a new agent of that name")
    report = run_import(text)
    assert Agent.objects.get(pk=old.pk).name == "older-bot" and report.kept["agent"] == 1


def test_a_superseded_by_moved_between_decisions_far_apart_in_the_file_imports(
        knowledge, monkeypatch):
    from knowledge_app.backup import importer

    monkeypatch.setattr(importer, "CHUNK", 1)  # every line a chunk of its own
    items = records(export(account="alice"))
    target = str(knowledge["second"].pk)
    newer = "2999-01-01T00:00:00.000000+00:00"
    first = next(i for i in items if i.get("id") == str(knowledge["first"].pk))
    first.update(superseded_by_id=None, status="active", updated_at=newer)
    # Not the decision "second" is superseded by: superseding "second" it would close a loop.
    other = next(i for i in items if i["kind"] == "decision" and i["title"] == "Drop tests")
    other.update(superseded_by_id=target, status="superseded", updated_at=newer)
    run_import(lines_of(items), dry_run=True)
    run_import(lines_of(items))
    assert Decision.objects.get(pk=other["id"]).superseded_by_id == knowledge["second"].pk
    assert Decision.objects.get(pk=first["id"]).superseded_by_id is None


def test_a_superseded_by_already_named_on_this_server_is_refused_at_the_check(knowledge):
    text = export(account="alice")
    items = records(text)
    target = str(knowledge["second"].pk)  # "first" is superseded by it here
    # Not the decision "second" is superseded by: superseding "second" it would close a loop.
    other = next(i for i in items if i["kind"] == "decision" and i["title"] == "Drop tests")
    other.update(superseded_by_id=target, status="superseded",
                 updated_at="2999-01-01T00:00:00.000000+00:00")
    first = next(i for i in items if i.get("id") == str(knowledge["first"].pk))
    first["superseded_by_id"] = None  # its copy here (as new: kept) still names the target
    number = items.index(other) + 1
    with pytest.raises(ImportRefused, match=f"line {number}: superseded_by {target} already "
                                            f"names the decision {knowledge['first'].pk}"):
        run_import(lines_of(items), dry_run=True)


def _chain(items: list[dict], knowledge) -> list[dict]:
    """The file's lines of the chain first -> second -> third (in force)."""
    first = next(i for i in items if i.get("id") == str(knowledge["first"].pk))
    second = next(i for i in items if i.get("id") == first["superseded_by_id"])
    third = next(i for i in items if i.get("id") == second["superseded_by_id"])
    return [first, second, third]


@pytest.mark.parametrize("size", [2, 3])
def test_a_loop_of_supersedes_in_the_file_is_refused_naming_a_line_of_it(knowledge, size):
    """Each decision named by one other, none by itself: all passed, and a restore held
    decisions all superseded, each by the next, with no decision of the loop in force."""
    items = records(export(account="alice"))
    chain = _chain(items, knowledge)
    last = chain[size - 1]
    last.update(superseded_by_id=chain[0]["id"], status="superseded")
    if size == 2:
        chain[2].update(status="active", superseded_by_id=None)
    number = items.index(chain[0]) + 1
    for here in ("kept as they are", "none"):  # the file is refused, whatever this server has
        if here == "none":
            wipe()
        for dry_run in (True, False):
            with pytest.raises(ImportRefused) as refused:
                run_import(lines_of(items), dry_run=dry_run)
            assert refused.value.message == (
                f"line {number}: superseded_by {chain[0]['superseded_by_id']} closes a loop "
                f"of {size} decisions, each superseded by the next: none of them would be in "
                "force")
    assert not Decision.objects.exists() and not User.objects.exists()


def test_a_file_whose_supersede_closes_a_loop_with_this_servers_is_refused(knowledge):
    """The file's copy of a decision is written where it is newer, the others kept as this
    server has them: a file in which "first" is superseded by "second", imported where
    "second" is (since) superseded by "first", left both superseded, each by the other."""
    items = records(export(account="alice"))
    first, second, third = _chain(items, knowledge)
    first["updated_at"] = "2999-01-01T00:00:00.000000+00:00"  # the file's copy is written
    Decision.objects.filter(pk=first["id"]).update(superseded_by=None, status="active")
    Decision.objects.filter(pk=second["id"]).update(superseded_by=first["id"])  # kept: as new
    before = snapshot()
    number = items.index(first) + 1
    for dry_run in (True, False):
        with pytest.raises(ImportRefused) as refused:
            run_import(lines_of(items), dry_run=dry_run)
        assert refused.value.message == (
            f"line {number}: superseded_by {second['id']} would close a loop of 2 decisions "
            "with those on this server, each superseded by the next: none of them would be "
            "in force")
    assert snapshot() == before
    run_import(lines_of(items), overwrite=True)  # the file's chain whole: no loop
    assert Decision.objects.get(pk=second["id"]).superseded_by_id == uuid.UUID(third["id"])


# --- vectors ---------------------------------------------------------------------------------


def test_decisions_and_patterns_of_the_same_model_keep_their_vectors(knowledge, embed_calls):
    text = export()
    wipe()
    embed_calls.clear()
    report = run_import(text)
    assert embed_calls == [] and report.vectors_kept == 5 + 3 and report.reembedded == 0


def test_decisions_and_patterns_of_another_model_are_re_embedded_after_the_import(
        knowledge, embed_calls):
    items = records(export())
    for item in items:
        if item["kind"] in ("decision", "pattern"):
            item["embedding_model"] = "openai:text-embedding-3-small"
    wipe()
    embed_calls.clear()
    report = run_import(lines_of(items))
    live = [*Decision.objects.live(), *Pattern.objects.live()]
    assert report.vectors_dropped == 8 and report.reembedded == len(live) == 4 + 2
    assert all(row.embedding_model == get_provider().name and row.embedding is not None
               for row in live)
    assert Decision.objects.filter(deleted_at__isnull=False, embedding__isnull=True).exists()


def test_a_deleted_relationship_listed_twice_is_refused_naming_the_repeat(knowledge):
    """A deleted edge holds no live value, so no unique check saw it repeated."""
    items, number, pk = listed_twice(records(export()), "project_relationship",
                                     lambda item: item["deleted_at"] is not None,
                                     metadata={"note": "second copy"})
    wipe()
    with pytest.raises(ImportRefused, match=f"line {number}: project_relationship {pk} "
                                            "appears twice"):
        run_import(lines_of(items))
    assert not Project.objects.exists()
