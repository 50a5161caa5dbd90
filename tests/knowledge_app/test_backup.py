"""Backups that restore: dumpdata/loaddata with vectors, and manage.py export / import."""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
import time
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from knowledge_app.backup import ImportRefused, account_export, backup_import
from knowledge_app.backup.kinds import KINDS, kinds_of
from memories_app import vectors
from memories_app.embeddings import DIMENSION, get_provider
from memories_app.models import Memory
from memories_app.services import memory_create, memory_delete, memory_update
from sessions_app.models import Agent, Session
from sessions_app.services import agent_delete, session_create, session_end

User = get_user_model()


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def data(account, other_account):
    """Two accounts with live, ended and soft-deleted rows, one memory without a vector."""
    first = session_create(account=account, agent_ref="planner", title="Kickoff",
                           external_id="ext-1", metadata={"k": [1, 2]})
    memory_create(account=account, agent_ref="planner", session_id=first.id,
                  content="Deploys run on Fridays", metadata={"team": "ops"}, importance=0.9)
    second = memory_create(account=account, agent_ref="planner", session_id=first.id,
                           content="The staging database is PostgreSQL 16")
    Memory.objects.filter(pk=second.pk).update(entities=["postgres"])
    gone = memory_create(account=account, agent_ref="planner", content="An old fact")
    memory_delete(memory=gone)
    session_end(session=first, summary="done")
    bare = memory_create(account=account, agent_ref="writer", content="No vector here")
    Memory.objects.filter(pk=bare.pk).update(embedding=None, embedding_model="",
                                             embedding_dimension=None)
    agent_delete(agent=Agent.objects.get(name="writer"))
    memory_create(account=other_account, agent_ref="mallory-bot", content="Mallory's own fact")


def snapshot() -> dict[str, list[dict]]:
    """Every row of every kind, by id, with the account named and vectors as bytes."""
    rows = {}
    for name, kind in KINDS.items():
        rows[name] = [
            {**row, **({} if "embedding" not in row else {"embedding": None if row[
                "embedding"] is None else row["embedding"].astype("<f4").tobytes()})}
            for row in kind.model._base_manager.order_by("pk").values(
                *[f.attname for f in kind.model._meta.concrete_fields if f.name != "account"],
                "account__username")
        ]
    return rows


def export(**kwargs) -> str:
    out = io.StringIO()
    account_export(out=out, **kwargs)
    return out.getvalue()


def run_import(text: str, **kwargs):
    return backup_import(file=io.BytesIO(text.encode()), **kwargs)


def wipe() -> None:
    User.objects.all().delete()  # cascades to keys, agents, sessions and memories


def by_kind(**counts) -> dict[str, int]:
    """A count for every kind of the file: zero unless given."""
    return {**dict.fromkeys(["account", *KINDS], 0), **counts}


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def lines_of(items: list[dict]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


# --- dumpdata / loaddata ---------------------------------------------------------------------


def test_dumpdata_and_loaddata_give_back_each_memory_with_its_exact_embedding(data, tmp_path):
    before = snapshot()
    path = tmp_path / "dump.json"
    call_command("dumpdata", "auth.user", "sessions_app", "memories_app", output=str(path))
    dumped = json.loads(path.read_text())
    vector = next(o for o in dumped if o["model"] == "memories_app.memory"
                  and o["fields"]["embedding"])["fields"]["embedding"]
    assert len(json.loads(vector)) == DIMENSION  # a JSON list, not numpy's printed form
    wipe()
    call_command("loaddata", str(path), verbosity=0)
    assert without_microseconds(snapshot()) == without_microseconds(before)


def without_microseconds(rows: dict) -> dict:
    """Django's JSON serializer keeps milliseconds only (export keeps every microsecond)."""
    return {kind: [{k: v.replace(microsecond=v.microsecond // 1000 * 1000)
                    if hasattr(v, "microsecond") else v for k, v in row.items()}
                   for row in items] for kind, items in rows.items()}


def test_a_dump_written_before_the_fix_in_numpy_printed_form_loads(memory, tmp_path):
    stored = Memory.objects.get(pk=memory.pk).embedding
    path = tmp_path / "old.json"
    call_command("dumpdata", "memories_app", output=str(path))
    dumped = json.loads(path.read_text())
    dumped[0]["fields"]["embedding"] = str(stored)  # what value_to_string used to write
    path.write_text(json.dumps(dumped))
    Memory.objects.all().delete()
    call_command("loaddata", str(path), verbosity=0)
    assert np.allclose(Memory.objects.get(pk=memory.pk).embedding, stored, atol=1e-7)


def test_a_vector_of_the_wrong_width_or_a_shortened_print_is_a_validation_error():
    from django.core.exceptions import ValidationError

    field = Memory._meta.get_field("embedding")
    with pytest.raises(ValidationError):
        field.to_python("[0.1, 0.2]")
    with pytest.raises(ValidationError):
        field.to_python("[0.1 0.2 ... 0.3]")
    assert field.to_python(json.dumps([0.5] * DIMENSION)).shape == (DIMENSION,)


# --- export -> import ------------------------------------------------------------------------


def test_export_then_import_into_an_empty_server_gives_back_every_row_exactly(data):
    before = snapshot()
    text = export()
    wipe()
    report = run_import(text)
    assert snapshot() == before  # ids, content, metadata, timestamps, deletions, vectors
    assert report.created == by_kind(account=2, agent=3, session=1, memory=5)
    assert report.vectors_kept == 4 and report.vectors_dropped == 0
    assert set(User.objects.values_list("username", flat=True)) == {"alice", "mallory"}
    assert not User.objects.get(username="alice").has_usable_password()


def test_each_line_has_a_kind_and_timestamps_keep_their_microseconds(data):
    items = records(export())
    assert items[0]["kind"] == "header" and items[0]["version"] == 3
    assert items[0]["embedding_model"] == get_provider().name
    assert items[-1] == {"kind": "end", "counts": by_kind(account=2, agent=3, session=1,
                                                           memory=5)}
    memory = next(i for i in items if i["kind"] == "memory" and i["embedding"])
    assert len(base64.b64decode(memory["embedding"])) == 4 * DIMENSION
    stored = Memory.objects.get(pk=memory["id"]).created_at
    assert memory["created_at"] == stored.isoformat(timespec="microseconds")
    assert any(i["kind"] == "memory" and i["deleted_at"] for i in items)  # soft-deleted kept
    assert not any("key" in k or "password" in k for i in items for k in i)


def test_importing_the_same_file_twice_updates_and_never_duplicates(data):
    text = export()
    wipe()
    run_import(text)
    once = snapshot()
    again = run_import(text)
    assert snapshot() == once
    assert again.created == by_kind()
    assert again.updated == by_kind(account=2)  # accounts: matched by username
    assert again.kept == by_kind(agent=3, session=1, memory=5)


def _edit_and_delete_since(account) -> tuple[Memory, Memory]:
    """One memory edited and one deleted through the services, as the API does."""
    edited, deleted = Memory.objects.filter(account=account, deleted_at__isnull=True)[:2]
    edited = memory_update(memory=edited, changes={"content": "Deploys moved to Tuesdays"})
    return edited, memory_delete(memory=deleted)


def test_an_older_file_never_takes_back_edits_or_deletions_made_since(data, account):
    text = export()
    edited, deleted = _edit_and_delete_since(account)
    Session.objects.filter(account=account).update(title="Renamed since",
                                                   updated_at=timezone.now())
    before = snapshot()
    report = run_import(text)
    assert snapshot() == before  # nothing rolled back: no row is older than the file's
    assert Memory.objects.get(pk=edited.pk).content == "Deploys moved to Tuesdays"
    assert Memory.objects.get(pk=deleted.pk).deleted_at is not None
    assert report.kept == by_kind(agent=3, session=1, memory=5)
    assert report.updated == by_kind(account=2) and report.created == by_kind()


def test_overwrite_rolls_the_server_back_to_the_file(data, account):
    text = export()
    original = {i["id"]: i for i in records(text) if i["kind"] == "memory"}
    edited, deleted = _edit_and_delete_since(account)
    report = run_import(text, overwrite=True)
    assert Memory.objects.get(pk=edited.pk).content == original[str(edited.pk)]["content"]
    assert Memory.objects.get(pk=deleted.pk).deleted_at is None
    assert report.updated == by_kind(account=2, agent=3, session=1, memory=5)
    assert report.kept == by_kind()


def test_a_file_newer_than_this_servers_copy_is_written(data, account):
    older = export()
    edited, deleted = _edit_and_delete_since(account)
    newer = export()
    run_import(older, overwrite=True)  # this server goes back to the older copy
    report = run_import(newer)
    assert Memory.objects.get(pk=edited.pk).content == "Deploys moved to Tuesdays"
    assert Memory.objects.get(pk=deleted.pk).deleted_at is not None
    assert report.updated["memory"] == 2 and report.kept["memory"] == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_edit_made_while_a_newer_file_imports_is_not_lost_to_the_files_copy(data, account):
    """The file's copy is newer than the row here when the import starts, but an edit is
    committing meanwhile: the import waits for the row's lock and then keeps the edit."""
    memory = Memory.objects.filter(account=account, deleted_at__isnull=True).first()
    older = export()
    memory_update(memory=memory, changes={"content": "Deploys moved to Tuesdays"})
    newer = export()
    run_import(older, overwrite=True)
    editing, release, reports = threading.Event(), threading.Event(), []

    def edit():
        try:
            with transaction.atomic():
                row = Memory.objects.select_for_update().get(pk=memory.pk)
                row.content = "Deploys moved to Wednesdays"
                row.save(update_fields=["content", "updated_at"])
                editing.set()
                release.wait(10)
        finally:
            connection.close()

    def restore():
        try:
            reports.append(run_import(newer, reembed=False))
        finally:
            connection.close()

    editor, importer = threading.Thread(target=edit), threading.Thread(target=restore)
    editor.start()
    assert editing.wait(10)
    importer.start()
    time.sleep(1)  # the import reaches the locked row and waits
    release.set()
    editor.join(10)
    importer.join(30)
    assert Memory.objects.get(pk=memory.pk).content == "Deploys moved to Wednesdays"
    assert reports and reports[0].kept["memory"] == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_while_an_import_runs_the_rows_it_keeps_as_they_are_stay_free_for_the_api(
        data, account, monkeypatch):
    """A restore onto the live server locks only the rows it writes: an agent and a session
    it keeps as they are can be edited and written into while its transaction is still
    open (every row of the file stayed locked until the commit, so the API's writes to them
    waited, and past its statement timeout answered 503)."""
    from knowledge_app.backup import importer

    opened = session_create(account=account, agent_ref="planner", title="Open")
    older = export()
    memory_update(memory=Memory.objects.filter(account=account, deleted_at__isnull=True)
                  .first(), changes={"content": "Deploys moved to Tuesdays"})
    newer = export()
    run_import(older, overwrite=True)
    writing, release, reports, meanwhile = threading.Event(), threading.Event(), [], []
    real = importer._Writer.link_forward

    def hold_the_transaction(self):
        real(self)
        writing.set()
        release.wait(20)

    monkeypatch.setattr(importer._Writer, "link_forward", hold_the_transaction)

    def restore():
        try:
            reports.append(run_import(newer, reembed=False))
        finally:
            connection.close()

    importer_thread = threading.Thread(target=restore)
    importer_thread.start()
    try:
        assert writing.wait(20)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        Agent.objects.filter(account=account, name="planner").update(
            description="edited meanwhile", updated_at=timezone.now())
        meanwhile.append(memory_create(account=account, agent_ref="planner",
                                       session_id=opened.id, content="Written meanwhile"))
    finally:
        release.set()
        importer_thread.join(30)
    assert reports and reports[0].updated["memory"] == 1
    assert reports[0].kept["agent"] == 3 and reports[0].kept["session"] == 2
    assert Memory.objects.filter(content="Deploys moved to Tuesdays").count() == 1
    assert Agent.objects.get(account=account, name="planner").description == "edited meanwhile"
    assert Memory.objects.get(pk=meanwhile[0].pk).session_id == opened.id


def test_one_account_exports_only_its_own_rows(data, account):
    items = records(export(account="alice"))
    assert items[0]["account"] == "alice"
    assert {i["username"] for i in items if i["kind"] == "account"} == {"alice"}
    assert {i["account"] for i in items if "account" in i and i["kind"] != "header"} == {
        "alice"}
    assert sum(i["kind"] == "memory" for i in items) == Memory.objects.filter(
        account=account).count()
    with pytest.raises(Exception, match="No account named 'nobody'"):
        export(account="nobody")


def test_importing_one_account_leaves_the_others_alone(data, other_account):
    text = export(account="alice")
    User.objects.filter(username="alice").delete()
    mallory = snapshot()["memory"]
    run_import(text)
    assert Memory.objects.filter(account=other_account).count() == 1
    assert [m for m in snapshot()["memory"] if m["account__username"] == "mallory"] == mallory


# --- refusing a bad file ---------------------------------------------------------------------


def corrupt(text: str, number: int, change) -> str:
    items = text.splitlines()
    items[number - 1] = change(items[number - 1])
    return "\n".join(items) + "\n"


def edit(**fields):
    return lambda line: json.dumps({**json.loads(line), **fields})


def drop(name):
    return lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != name})


BAD_LINES = {
    "not JSON": (lambda line: line[:-5], "not valid JSON"),
    "not an object": (lambda line: "[1, 2]", "must be a JSON object"),
    "an unknown kind": (edit(kind="memroy"), "unknown kind"),
    "a missing field": (drop("content"), "content is missing"),
    "an unknown field": (edit(colour="red"), "unknown field 'colour'"),
    "an unknown agent": (edit(agent_id=str(uuid.uuid4())), "agent_id"),
    "an agent of another account": (None, "agent_id"),
    "importance out of range": (edit(importance=1.5), "importance must be between 0 and 1"),
    "a wrong type": (edit(metadata="x"), "metadata must be a JSON object"),
    "a bad choice": (edit(tier="lukewarm"), "tier"),
    "a naive timestamp": (edit(created_at="2026-01-01T10:00:00"), "UTC offset"),
    "a time past year 9999 in UTC": (edit(updated_at="9999-12-31T23:59:59.999999-05:00"),
                                     "updated_at is out of range"),
    "a short vector": (edit(embedding=[0.1, 0.2]), "384 finite"),
    "a blank content": (edit(content=""), "content"),
    "a NUL character": (edit(metadata={"k": "a\x00b"}), "NUL"),
    "a lone surrogate": (edit(content="a\udfffb"), "lone surrogate"),
    "an account that is a list": (edit(account=["alice"]), "has no account line before it"),
    "an account that is an object": (edit(account={"username": "alice"}),
                                     "has no account line before it"),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_line_is_refused_with_its_number_and_nothing_is_imported(data, case):
    text = export()
    items = records(text)
    number = max(n for n, i in enumerate(items, 1) if i["kind"] == "memory"
                 and i["account"] == "alice")  # the last of alice's memories
    change, message = BAD_LINES[case]
    if change is None:
        other_agent = next(i["id"] for i in items if i["kind"] == "agent"
                           and i["account"] == "mallory")
        change = edit(agent_id=other_agent)
    bad = corrupt(text, number, change)
    wipe()
    with pytest.raises(ImportRefused) as refused:
        run_import(bad)
    assert refused.value.message.startswith(f"line {number}: ")
    assert message in refused.value.message
    assert not User.objects.exists() and not Agent.objects.exists()
    assert not Memory.objects.exists()


def listed_twice(items: list[dict], kind: str, which=lambda item: True, **changes
                 ) -> tuple[list[dict], int, str]:
    """``items`` with the first line of ``kind`` (``which`` says) listed again, changed,
    after the last line of that kind, and the end line's counts made to match: the lines,
    the repeat's number and the id."""
    first = next(i for i in items if i["kind"] == kind and which(i))
    last = max(n for n, i in enumerate(items) if i["kind"] == kind)
    lines = [*items[:last + 1], {**first, **changes}, *items[last + 1:]]
    lines[-1] = {**lines[-1], "counts": {**lines[-1]["counts"],
                                         kind: lines[-1]["counts"][kind] + 1}}
    return lines, last + 2, first["id"]


def test_a_memory_listed_twice_is_refused_naming_the_repeat(data):
    """Every other kind listed twice was refused; two memory lines of one id were written
    as one (the second's content, or the newer one's across chunks), the first one's lost
    without a word and the summary short of a memory."""
    items, number, pk = listed_twice(records(export()), "memory", content="Another text")
    wipe()
    with pytest.raises(ImportRefused) as refused:
        run_import(lines_of(items), dry_run=True)
    assert refused.value.message == f"line {number}: memory {pk} appears twice"
    with pytest.raises(ImportRefused):
        run_import(lines_of(items))
    assert not User.objects.exists() and not Memory.objects.exists()


def test_a_file_cut_short_or_without_its_header_is_refused(data):
    text = export()
    wipe()
    with pytest.raises(ImportRefused, match="without its end line"):
        run_import("".join(text.splitlines(keepends=True)[:-2]))
    with pytest.raises(ImportRefused, match="line 1: not a memoryrelay-export file"):
        run_import("".join(text.splitlines(keepends=True)[1:]))
    with pytest.raises(ImportRefused, match="the end line counts"):
        run_import(corrupt(text, len(text.splitlines()), edit(counts={"memory": 1})))
    assert not Memory.objects.exists() and not User.objects.exists()


def test_blank_lines_and_crlf_line_ends_are_read_as_the_export_wrote_them(data):
    """An export edited by hand (a blank line left between two, a line of spaces, Windows
    line ends, a line break after the end line) refused the whole file as "not valid
    JSON": a blank line holds nothing, and is passed over."""
    before = snapshot()
    lines = export().splitlines()
    edited = "\r\n".join(["", *lines[:3], "", "  \t", *lines[3:], "", ""])
    wipe()
    checked = run_import(edited, dry_run=True)
    report = run_import(edited)
    assert snapshot() == before
    assert checked.counts == report.counts and report.lines == len(lines) + 4
    bad = edited.replace(lines[4], lines[4][:-5])  # lines keep their numbers in errors
    with pytest.raises(ImportRefused, match="^line 8: not valid JSON"):
        run_import(bad, dry_run=True)
    with pytest.raises(ImportRefused, match="^the file is empty$"):
        run_import("\n \r\n\n")


def test_a_bad_account_line_is_refused_with_its_number(data):
    items = records(export())
    number = next(n for n, i in enumerate(items, 1) if i["kind"] == "account")
    wipe()
    for change, message in ((edit(date_joined="yesterday"), "date_joined must be an ISO"),
                            (drop("username"), "needs a username"),
                            (edit(username="has\nnewline"), "username"),
                            (edit(username=" padded"), "username")):
        with pytest.raises(ImportRefused) as refused:
            run_import(corrupt(lines_of(items), number, change))
        assert refused.value.message.startswith(f"line {number}: ")
        assert message in refused.value.message
    assert not User.objects.exists()


def test_an_account_named_outside_djangos_rule_is_exported_and_imported(data, account):
    """Accounts made before names were checked (``create_api_key --user "ops team"``) are
    on servers; one of them refused the whole file, every account with it."""
    odd = User.objects.create(username="ops team!")
    memory_create(account=odd, agent_ref="bot", content="kept across the restore")
    text = export()
    wipe()
    report = run_import(text)
    assert report.created["account"] == 3
    assert Memory.objects.filter(account__username="ops team!").count() == 1


def test_an_id_that_belongs_to_another_account_on_this_server_is_refused(data):
    items = records(export(account="alice"))
    memory = next(i for i in items if i["kind"] == "memory")
    Memory.objects.filter(pk=memory["id"]).update(
        account=User.objects.get(username="mallory"))
    number = items.index(memory) + 1
    with pytest.raises(ImportRefused, match=f"line {number}: memory .* another account"):
        run_import(lines_of(items))


def test_an_id_another_account_takes_after_the_check_is_refused_and_its_row_left_alone(
        data, monkeypatch):
    """Between the check and the writes (minutes, for a large file) another import may
    write a row of another account with one of the file's ids: the writes overwrote it and
    moved it into the file's account (or, kept as newer, linked the file's rows to it)."""
    from knowledge_app.backup import importer

    items = records(export(account="alice"))
    memory = next(i for i in items if i["kind"] == "memory")
    Memory.objects.filter(pk=memory["id"]).delete()  # alice's file will bring it back
    mallory = User.objects.get(username="mallory")
    real = importer._ForwardLinks.check

    def taken_after_the_check(self):
        real(self)
        Memory.objects.create(id=memory["id"], account=mallory, content="Mallory's own fact",
                              agent=Agent.objects.get(account=mallory))

    monkeypatch.setattr(importer._ForwardLinks, "check", taken_after_the_check)
    number = items.index(memory) + 1
    with pytest.raises(ImportRefused, match=f"line {number}: memory .* another account"):
        run_import(lines_of(items))
    row = Memory.objects.get(pk=memory["id"])
    assert (row.account_id, row.content) == (mallory.pk, "Mallory's own fact")


def test_a_live_agent_name_taken_by_another_agent_on_this_server_is_refused(data, account):
    text = export(account="alice")
    Agent.objects.filter(name="planner").delete()  # the server lost it, then...
    memory_create(account=account, agent_ref="planner", content="a new planner's fact")
    items = records(text)
    number = next(n for n, i in enumerate(items, 1) if i.get("name") == "planner")
    with pytest.raises(ImportRefused, match=f"line {number}: the name 'planner' is taken"):
        run_import(text)


def _swap_names_since(account) -> tuple[str, str]:
    """Two agents swap names through a third, as the API would rename them."""
    from sessions_app.services import agent_get_or_create, agent_update

    first, _ = agent_get_or_create(account=account, name="alpha")
    second, _ = agent_get_or_create(account=account, name="beta")
    older = export(account="alice")
    agent_update(agent=first, changes={"name": "swap"})
    agent_update(agent=second, changes={"name": "alpha"})
    agent_update(agent=Agent.objects.get(pk=first.pk), changes={"name": "beta"})
    return older, export(account="alice")


def test_a_newer_file_in_which_two_agents_swapped_names_is_imported(data, account):
    """Each name is taken here by the other agent, which the file writes too: both are
    written (the holders set aside first), not refused."""
    older, newer = _swap_names_since(account)
    run_import(older, overwrite=True)  # this server goes back to before the swap
    assert set(Agent.objects.filter(name__in=["alpha", "beta"]).values_list(
        "name", flat=True)) == {"alpha", "beta"}
    report = run_import(newer)
    names = {str(a.pk): a.name for a in Agent.objects.filter(account=account)}
    in_file = {i["id"]: i["name"] for i in records(newer) if i.get("kind") == "agent"}
    assert in_file == {pk: names[pk] for pk in in_file}
    assert Agent.objects.filter(account=account, deleted_at__isnull=True,
                                name__in=["alpha", "beta"]).count() == 2
    assert report.updated["agent"] == 2
    assert run_import(older, overwrite=True).updated["agent"] >= 2  # and back again


def test_a_swap_whose_other_side_was_edited_here_since_is_refused_and_changes_nothing(
        data, account):
    older, newer = _swap_names_since(account)
    run_import(older, overwrite=True)
    holder = Agent.objects.get(account=account, name="beta")  # the file gives "beta" away
    Agent.objects.filter(pk=holder.pk).update(description="edited here",
                                              updated_at=timezone.now())
    before = snapshot()
    with pytest.raises(ImportRefused):
        run_import(newer)
    assert snapshot() == before  # the holder still live, with its name


def test_a_swap_whose_other_side_is_edited_while_the_file_imports_loses_nothing(
        data, account, monkeypatch):
    """Edited after the check and before the writes: the holder is kept, so it is not set
    aside (set aside and then kept, it would stay deleted); the row taking its name is
    refused by the database, and nothing is imported."""
    from knowledge_app.backup import importer

    older, newer = _swap_names_since(account)
    run_import(older, overwrite=True)
    holder = Agent.objects.get(account=account, name="beta")
    real = importer._ForwardLinks.check

    def edited_after_the_check(self):
        real(self)
        Agent.objects.filter(pk=holder.pk).update(description="edited meanwhile",
                                                  updated_at=timezone.now())

    monkeypatch.setattr(importer._ForwardLinks, "check", edited_after_the_check)
    with pytest.raises(ImportRefused, match="nothing was imported"):
        run_import(newer)
    holder.refresh_from_db()
    assert holder.deleted_at is None and holder.name == "beta"


def test_a_database_refusal_during_the_writes_rolls_everything_back(data, monkeypatch):
    """Said on one line, the database's detail kept (PostgreSQL puts it on a line of its
    own, and the command's error ran over two)."""
    from knowledge_app.backup import importer

    text = export()
    wipe()
    real = importer._upsert

    def fail_on_memories(model, objs):
        if model is Memory:
            from django.db import IntegrityError
            raise IntegrityError('duplicate key value violates unique constraint "x"\n'
                                 "DETAIL:  Key (id)=(1) already exists.\n")
        real(model, objs)

    monkeypatch.setattr(importer, "_upsert", fail_on_memories)
    with pytest.raises(ImportRefused, match="nothing was imported") as refused:
        run_import(text)
    assert "\n" not in refused.value.message
    assert 'constraint "x"; DETAIL: Key (id)=(1) already exists.)' in refused.value.message
    assert not User.objects.exists() and not Agent.objects.exists()


# --- embeddings: same model keeps, another model re-embeds ----------------------------------


def test_an_import_into_a_server_with_the_same_model_embeds_nothing(data, embed_calls):
    text = export()
    wipe()
    embed_calls.clear()
    report = run_import(text)
    assert embed_calls == [] and report.reembedded == 0
    memory = Memory.objects.get(content="Deploys run on Fridays")
    hits = vectors.nearest(Memory.objects.live(), memory.embedding, 1)
    assert hits[0][0].pk == memory.pk


def test_memories_embedded_by_another_model_are_re_embedded_after_the_import(
        data, embed_calls):
    items = records(export())
    for item in items:
        if item["kind"] == "memory" and item["embedding"]:
            item["embedding_model"] = "openai:text-embedding-3-small"
    wipe()
    embed_calls.clear()
    report = run_import(lines_of(items))
    live = Memory.objects.live()
    assert report.vectors_dropped == 4 and report.reembedded == live.count() == 3
    assert sorted(t for call in embed_calls for t in call) == sorted(
        live.values_list("content", flat=True))
    assert not live.exclude(embedding_model=get_provider().name).exists()
    assert not live.filter(embedding__isnull=True).exists()


def test_without_reembed_the_stale_memories_are_left_for_manage_py_reembed(data, embed_calls):
    items = records(export())
    for item in items:
        if item["kind"] == "memory":
            item["embedding_model"] = "other-model"
    wipe()
    embed_calls.clear()
    report = run_import(lines_of(items), reembed=False)
    assert embed_calls == [] and report.vectors_dropped == 4
    assert Memory.objects.live().filter(embedding__isnull=True).count() == 3
    call_command("reembed", stdout=io.StringIO())
    assert not Memory.objects.live().filter(embedding__isnull=True).exists()


# --- streaming -------------------------------------------------------------------------------


def test_export_reads_memories_page_by_page_with_one_query_per_page(account, agent):
    vector = np.ones(DIMENSION, np.float32) / np.sqrt(DIMENSION)
    at = timezone.now()
    Memory.objects.bulk_create([
        Memory(account=account, agent=agent, content=f"fact {n}", embedding=vector,
               embedding_model="m", embedding_dimension=DIMENSION,
               created_at=at + timedelta(microseconds=n % 7))  # ties broken by id
        for n in range(45)])
    for chunk_size, pages in ((10, 5), (50, 1), (9, 6)):
        with CaptureQueriesContext(connection) as captured:
            items = records(export(chunk_size=chunk_size))
        memory_queries = [q["sql"] for q in captured.captured_queries
                          if 'FROM "memories_app_memory"' in q["sql"]]
        assert len(memory_queries) == pages, (chunk_size, memory_queries)
        assert all("LIMIT" in sql for sql in memory_queries)
        ids = [i["id"] for i in items if i["kind"] == "memory"]
        assert len(ids) == len(set(ids)) == 45


# --- the commands ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_commands_round_trip_through_a_file_and_standard_input(tmp_path, monkeypatch):
    account = User.objects.create(username="carol")
    memory_create(account=account, agent_ref="bot", content="Carol likes tea")
    before = snapshot()
    path = tmp_path / "backup.jsonl"
    err = io.StringIO()
    call_command("export", "--account", "carol", "-o", str(path), stderr=err)
    assert ("Exported 1 accounts, 1 agents, 0 sessions, 0 projects, 0 project relationships, "
            "0 entities, 1 memories, 0 decisions" in err.getvalue())
    wipe()
    out = io.StringIO()
    call_command("import", str(path), "--dry-run", stdout=out)
    assert "Checked 5 lines" in out.getvalue() and not Memory.objects.exists()
    call_command("import", str(path), stdout=out)
    assert "memories 1 created / 0 updated / 0 kept" in out.getvalue()
    assert snapshot() == before
    stdin = io.TextIOWrapper(io.BytesIO(path.read_bytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    out = io.StringIO()
    call_command("import", "-", stdout=out)
    assert "memories 0 created / 0 updated / 1 kept" in out.getvalue()
    assert "--overwrite writes the file's copy" in out.getvalue()
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_import_reports_progress_and_a_refused_file_is_a_command_error(tmp_path, data):
    path = tmp_path / "backup.jsonl"
    call_command("export", "-o", str(path), stderr=io.StringIO())
    err = io.StringIO()
    call_command("import", str(path), "--progress-every", "3", stdout=io.StringIO(),
                 stderr=err)
    assert "checked 3 lines" in err.getvalue() and "imported 6 lines" in err.getvalue()
    path.write_text(path.read_text().replace('"kind":"session"', '"kind":"sesion"'))
    with pytest.raises(CommandError, match=r"line \d+: unknown kind 'sesion'.*Nothing was"):
        call_command("import", str(path), stdout=io.StringIO(), stderr=io.StringIO())


# --- a file from another database ------------------------------------------------------------


def foreign_file(version: int = 3) -> str:
    """An export as another server (SQLite or PostgreSQL) writes it, built by hand."""
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(DIMENSION).astype("<f4")
    vector /= np.linalg.norm(vector)
    agent, session, memory = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
    at = "2025-03-17T10:00:00.123456+00:00"
    later = "2025-03-17T11:30:00.000001+00:00"
    return lines_of([
        {"kind": "header", "format": "memoryrelay-export", "version": version,
         "exported_at": later, "embedding_model": get_provider().name,
         "embedding_dimension": DIMENSION, "embedding_encoding": "base64-float32-le",
         "account": None},
        {"kind": "account", "username": "dana", "email": "d@example.org", "first_name": "",
         "last_name": "", "is_active": True, "date_joined": at},
        {"kind": "agent", "id": agent, "account": "dana", "deleted_at": None, "name": "scout",
         "description": "Finds things", "config": {"a": 1}, "metadata": {},
         "last_active_at": later, "created_at": at, "updated_at": later},
        {"kind": "session", "id": session, "account": "dana", "deleted_at": None,
         "agent_id": agent, "external_id": "trip-7", "project": "p", "status": "ended",
         "title": "Trip", "summary": "Went well", "metadata": {"x": [1, None]},
         "started_at": at, "ended_at": later, "created_at": at, "updated_at": later,
         **({"summary_method": "provided"} if version >= 3 else {})},
        {"kind": "memory", "id": memory, "account": "dana", "deleted_at": None,
         "agent_id": agent, "session_id": session, "project": "p",
         "content": "Caf\u00e9 on the corner opens at 7 \u2013 \U0001f600",
         "metadata": {"deep": {"er": True}}, "entities": ["cafe"], "memory_type": "event",
         "visibility": "confidential", "importance": 0.123456789, "tier": "cold",
         "embedding": base64.b64encode(vector.tobytes()).decode(),
         "embedding_model": get_provider().name, "created_at": later, "updated_at": later,
         **({"entity_links": []} if version >= 3 else {})},
        {"kind": "end", "counts": {**dict.fromkeys(kinds_of(version), 0), "account": 1,
                                   "agent": 1, "session": 1, "memory": 1}},
    ])


def test_a_file_from_another_database_imports_and_exports_back_line_for_line(db):
    """Run on SQLite and on PostgreSQL: a file either one writes reads into the other."""
    text = foreign_file()
    run_import(text)
    again, expected = records(export()), records(text)
    assert len(again) == len(expected)
    for got, want in zip(again[1:], expected[1:], strict=True):  # all but exported_at
        assert {k: v for k, v in got.items() if got.get(k) != want.get(k)} == {
            k: v for k, v in want.items() if got.get(k) != want.get(k)}


def test_a_version_1_file_still_imports_and_holds_only_its_four_kinds(db):
    text = foreign_file(version=1)
    report = run_import(text)
    assert report.version == 1 and report.created == by_kind(account=1, agent=1, session=1,
                                                             memory=1)
    assert Memory.objects.get().content.startswith("Caf\u00e9")
    items = records(text)
    items.insert(-1, {"kind": "project", "id": str(uuid.uuid4()), "account": "dana"})
    with pytest.raises(ImportRefused, match=f"line {len(items) - 1}: unknown kind 'project'"):
        run_import(lines_of(items))


@pytest.mark.parametrize("where", ["missing/dir/backup.jsonl", "."])
def test_an_export_to_a_path_it_cannot_write_is_a_command_error_before_any_read(
        tmp_path, data, where, django_assert_max_num_queries):
    target = tmp_path / where
    with django_assert_max_num_queries(0), pytest.raises(CommandError, match=r"cannot write|"
                                                         r"is a directory"):
        call_command("export", "-o", str(target), stderr=io.StringIO())


def test_an_export_whose_reader_stops_reading_says_it_is_incomplete(data, monkeypatch):
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    with pytest.raises(CommandError, match="incomplete"):
        call_command("export", "-o", "-", stderr=io.StringIO())


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "-2.5E999"])
def test_a_number_json_has_not_is_refused_at_the_check_naming_its_line(data, value):
    """Python reads NaN, and a number past a double's range as infinity; no JSON column
    takes either: the dry run passed the file the import then failed on, naming a range of
    lines."""
    items = records(export())
    number = next(n for n, i in enumerate(items, 1) if i.get("kind") == "memory")
    text = lines_of(items).splitlines()
    text[number - 1] = text[number - 1].replace('"metadata": {', f'"metadata": {{"x": {value}, ', 1)
    with pytest.raises(ImportRefused, match=f"line {number}: not valid JSON.*{value}"):
        run_import("\n".join(text) + "\n", dry_run=True)


def test_a_line_nested_past_the_stack_is_refused_naming_it(data):
    items = records(export())
    text = lines_of(items).splitlines()
    text.insert(2, "[" * 200_000 + "]" * 200_000)
    with pytest.raises(ImportRefused, match="line 3: nested too deep"):
        run_import("\n".join(text) + "\n", dry_run=True)



def test_an_agent_restored_since_comes_back_with_its_sessions_and_memories(data, account):
    """A restore moved the agent's updated_at and not its sessions' or memories': a newer
    file brought the agent back and kept them deleted, as older copies."""
    from sessions_app.services import agent_restore

    agent = Agent.objects.get(account=account, name="planner")
    agent_delete(agent=agent)
    deleted = export()
    agent_restore(agent=Agent.objects.get(pk=agent.pk))
    restored = export()
    run_import(deleted, overwrite=True)  # another server, holding the deleted state
    assert not Memory.objects.filter(agent=agent, deleted_at__isnull=True).exists()
    run_import(restored)
    assert Agent.objects.get(pk=agent.pk).deleted_at is None
    assert Session.objects.filter(agent=agent, deleted_at__isnull=True).count() == 1
    assert Memory.objects.filter(agent=agent, deleted_at__isnull=True).count() == 2
