"""LoCoMo retrieval through a live server: does search find the turn that answers a question?

    .venv/bin/python benchmarks/locomo_bench.py --data locomo10.json \\
        --url http://127.0.0.1:8000 --key "$MEMORYRELAY_API_KEY" [--conversations 5-9]

LoCoMo (Maharana et al., ACL 2024) is ten long two-person conversations (19 to 32 sessions,
about 5,900 turns in all) with about 1,500 questions whose answering turns are labelled
(``evidence``: dia_ids such as ``D3:7``). ``--data`` takes ``locomo10.json`` (a list of
samples, each ``{"sample_id", "conversation": {...}, "qa": [...]}``), a single conversation
as a flat object, a directory of them, or the ``locomo10.zip`` that holds them.

Each conversation goes into a project of its own (``<prefix>-<sample>-<format>``), each of
its two speakers is an agent (``Caroline@<project>``: names are unique per account and the
same name speaks in several conversations), each LoCoMo session is one session both agents
share through its ``external_id`` (``POST /v1/sessions/get-or-create``), as the Sessions
API has agents collaborate, and each turn is one memory of that session by its speaker,
through ``POST /v1/memories/batch``, in the order spoken, its dia_id in ``metadata``. Search
reads a memory of a session with the ones around it (memories_app/neighbours.py), favours
the memories of the agent a question names (memories_app/search.py) and, when a question
names a date or asks when, the turns of that time or that say when (memories_app/periods.py:
the ``[8 May, 2023]`` stamp is a turn's day). Agents that
already hold every turn are reused (use another ``--agent-prefix`` after changing the
server's ingestion). Then every question of categories 1 to 4 (category 5, adversarial,
has no answer in the conversation) is asked through ``POST /v1/memories/search`` within its
project, ``limit`` 10, in each mode. A question counts as found at k when one of its evidence
turns is among the first k hits. The script prints recall@1/5/10 and MRR (over the first
10) per mode and per category, with client-side latency (HTTP, auth, the query's
embedding, ranking, JSON) at p50 and p95. It asserts nothing.

Memory formats (``--format``):

* ``turn`` (default): ``[8 May, 2023] Caroline: text``, the session's date, the speaker and
  what was said, with a shared photo's caption as ``[photo: ...]``: each turn is a
  self-contained fact with who and when, the way an agent would store it;
* ``prev``: the same followed by ``(after <the turn before it>)``: a short reply ("5 years
  already!") carries the question it answers. Measured on all ten conversations before
  search read a session's memories in context: hybrid recall@5 0.715 and @10 0.805 against
  0.674 and 0.761 for ``turn``, but recall@1 0.284 against 0.413, since the turn after the
  answer now holds the answer too. Reading in context gets most of that gain for ``turn``
  without the loss (see README.md);
* ``window``: the turn between both of its neighbours (recall@1 drops further);
* ``bare``: the turn's text alone (no date, speaker or photo): to measure what they add.

Put each format in an account of its own when latency matters: every search's candidates
are the account's memories narrowed to the project, so other formats' memories slow it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MODES = ("hybrid", "keyword", "semantic")
KS = (1, 5, 10)
LIMIT = 10
BATCH = 100  # the batch endpoint's most items per call
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
FORMATS = ("turn", "bare", "prev", "window")
_DIA = re.compile(r"D:?(\d+):(\d+)")


# --- data ---------------------------------------------------------------------------------


@dataclass
class Turn:
    dia_id: str
    content: str
    speaker: str = "?"


@dataclass
class Question:
    text: str
    category: int
    evidence: set[str]


@dataclass
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]
    unanswerable: int = 0  # questions of categories 1-4 whose evidence names no turn


def dia_ids(evidence) -> set[str]:
    """The dia_ids an evidence list names, normalized: the data has ``D8:6; D9:17``,
    ``D:11:26`` and ``D30:05`` beside the usual ``D3:7``."""
    found = set()
    for item in evidence or []:
        for session, turn in _DIA.findall(str(item)):
            found.add(f"D{int(session)}:{int(turn)}")
    return found


def session_date(when: str) -> str:
    """``1:56 pm on 8 May, 2023`` -> ``8 May, 2023``."""
    return when.split(" on ", 1)[-1].strip()


def said(turn: dict) -> str:
    text = " ".join(str(turn.get("text", "")).split())
    caption = turn.get("blip_caption")
    photo = f" [photo: {caption}]" if caption else ""
    return f"{turn.get('speaker', '?')}: {text}{photo}"


def turn_content(turn: dict, date: str, fmt: str, before=None, after=None) -> str:
    if fmt == "bare":
        return " ".join(str(turn.get("text", "")).split()) or "(photo)"
    if fmt == "prev" and before:
        return f"[{date}] {said(turn)} (after {said(before)})"
    if fmt == "window":
        context = " | ".join(said(t) for t in (before, after) if t)
        return f"[{date}] {said(turn)}" + (f" (between {context})" if context else "")
    return f"[{date}] {said(turn)}"


def conversation_of(sample: dict, name: str, fmt: str) -> Conversation:
    conv = sample.get("conversation", sample)
    sessions = sorted((int(m.group(1)), key) for key in conv
                      if (m := re.fullmatch(r"session_(\d+)", key)) and isinstance(conv[key], list))
    turns = []
    for _, key in sessions:
        date = session_date(str(conv.get(f"{key}_date_time", "")))
        said_here = conv[key]
        for n, turn in enumerate(said_here):
            dia = dia_ids([turn.get("dia_id")])
            if dia:
                before = said_here[n - 1] if n else None
                after = said_here[n + 1] if n + 1 < len(said_here) else None
                turns.append(Turn(dia.pop(), turn_content(turn, date, fmt, before, after),
                                  " ".join(str(turn.get("speaker", "?")).split()) or "?"))
    known = {t.dia_id for t in turns}
    questions, unanswerable = [], 0
    for qa in sample.get("qa", []):
        category = int(qa.get("category", 0))
        if category not in CATEGORIES:
            continue
        evidence = dia_ids(qa.get("evidence")) & known
        if not evidence:
            unanswerable += 1
            continue
        questions.append(Question(str(qa["question"]), category, evidence))
    return Conversation(str(sample.get("sample_id", name)), turns, questions, unanswerable)


def _number(name: str) -> tuple:
    digits = re.findall(r"\d+", Path(name).stem)
    return (int(digits[-1]) if digits else 0, name)


def load(path: Path, fmt: str = "turn") -> list[Conversation]:
    """The conversations in ``path`` (see the module's docstring), in LoCoMo's order."""
    if path.is_dir():
        blobs = [(p.name, p.read_text()) for p in sorted(path.glob("*.json"), key=lambda p:
                                                       _number(p.name))]
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = sorted((n for n in archive.namelist() if n.endswith(".json")), key=_number)
            blobs = [(n, archive.read(n).decode()) for n in names]
    else:
        blobs = [(path.name, path.read_text())]
    conversations = []
    for name, blob in blobs:
        data = json.loads(blob)
        samples = data if isinstance(data, list) else [data]
        for n, sample in enumerate(samples):
            label = f"conv-{_number(name)[0]}" if len(samples) == 1 else f"conv-{n}"
            conversations.append(conversation_of(sample, label, fmt))
    return conversations


def pick(conversations: list, spec: str | None) -> list:
    """``0-4``, ``5-9``, ``0,3,7`` (positions in the data) or None for all of them."""
    if not spec:
        return conversations
    chosen: list[int] = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        chosen.extend(range(int(low), int(high or low) + 1))
    return [conversations[i] for i in chosen]


# --- the server ---------------------------------------------------------------------------


class HttpClient:
    """One keep-alive connection to the server; ``post``/``get`` answer (status, json)."""

    def __init__(self, url: str, key: str, timeout: float = 120):
        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.connection = cls(parts.hostname, parts.port, timeout=timeout)
        self.base = parts.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body=None):
        payload = json.dumps(body) if body is not None else None
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            try:
                self.connection.request(method, self.base + path, body=payload,
                                        headers=self.headers)
                response = self.connection.getresponse()
                return response.status, json.loads(response.read() or b"null")
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post(self, path: str, body):
        return self.request("POST", path, body)

    def get(self, path: str):
        return self.request("GET", path)


def _ok(status, body, what: str):
    if status >= 300:
        raise RuntimeError(f"{what}: HTTP {status}: {json.dumps(body)[:500]}")
    return body


def project_name(prefix: str, conversation: Conversation, fmt: str) -> str:
    return f"{prefix}-{conversation.sample_id}-{fmt}"


def speaker_agent(project: str, speaker: str) -> str:
    """Each speaker is an agent of its own; names are unique per account and the same
    person may speak in several conversations, hence ``Caroline@<project>`` (search knows
    the agent as Caroline: memories_app/search.py named_author)."""
    return f"{speaker}@{project}"


def _by_session(turns: list[Turn]) -> list[tuple[int, list[Turn]]]:
    """The turns grouped by their LoCoMo session (``D3:7`` is session 3), in order."""
    groups: dict[int, list[Turn]] = {}
    for turn in turns:
        groups.setdefault(int(_DIA.match(turn.dia_id).group(1)), []).append(turn)
    return list(groups.items())


def ingest(client, conversation: Conversation, project: str, log=print) -> float:
    """Stores every turn as a memory of ``project`` by its speaker's agent (skipped when
    they already hold them all); returns the seconds it took."""
    held = 0
    for speaker in sorted({t.speaker for t in conversation.turns}):
        status, body = client.get(f"/v1/agents/{speaker_agent(project, speaker)}/stats")
        held += (body or {}).get("data", {}).get("total_memories", 0) if status == 200 else 0
    if held == len(conversation.turns):
        log(f"  {project}: {held} memories already stored, reused")
        return 0.0
    if held:
        raise RuntimeError(f"{project} holds {held} memories, not {len(conversation.turns)}: "
                           "use another --agent-prefix")
    start = time.perf_counter()
    for number, turns in _by_session(conversation.turns):
        # one session shared by both speakers' agents through its external_id
        status, body = client.post("/v1/sessions/get-or-create", {
            "external_id": f"{project}-session-{number}", "project": project,
            "agent_id": speaker_agent(project, turns[0].speaker),
            "title": f"{conversation.sample_id} session {number}"})
        session = _ok(status, body, "session")["id"]
        first, size = 0, BATCH
        while first < len(turns):
            items = [{"content": t.content, "session_id": session, "project": project,
                      "agent_id": speaker_agent(project, t.speaker),
                      "metadata": {"dia_id": t.dia_id}} for t in turns[first:first + size]]
            status, body = client.post("/v1/memories/batch", {"memories": items})
            if status == 413 and size > 1:  # over the batch's embedding budget: send fewer
                size = max(1, size // 2)
                continue
            _ok(status, body, "batch")
            if body["failed"]:
                raise RuntimeError(f"batch: {body['failed']} items failed: {body['results'][:3]}")
            first += len(items)
    seconds = time.perf_counter() - start
    log(f"  {project}: {len(conversation.turns)} memories stored in {seconds:.1f} s")
    return seconds


@dataclass
class Tally:
    ranks: list = field(default_factory=list)  # (category, rank or None)
    latencies: list = field(default_factory=list)  # ms

    def recall(self, k: int, category: int | None = None) -> float:
        rows = [r for c, r in self.ranks if category in (None, c)]
        return sum(1 for r in rows if r is not None and r <= k) / len(rows) if rows else 0.0

    def mrr(self, category: int | None = None) -> float:
        rows = [r for c, r in self.ranks if category in (None, c)]
        return sum(1 / r for r in rows if r is not None) / len(rows) if rows else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def summary(self) -> dict:
        out = {f"r@{k}": round(self.recall(k), 4) for k in KS}
        out["mrr"] = round(self.mrr(), 4)
        out["p50_ms"], out["p95_ms"] = round(self.quantile(0.5), 1), round(self.quantile(0.95), 1)
        out["questions"] = len(self.ranks)
        out["categories"] = {c: {**{f"r@{k}": round(self.recall(k, c), 4) for k in KS},
                                 "mrr": round(self.mrr(c), 4),
                                 "questions": sum(1 for x, _ in self.ranks if x == c)}
                             for c in CATEGORIES}
        return out


def ask(client, conversations, projects, modes, limit: int = LIMIT) -> list[dict[str, Tally]]:
    """One {mode: Tally} per conversation."""
    every = []
    for conversation, project in zip(conversations, projects, strict=True):
        tallies = {mode: Tally() for mode in modes}
        for question in conversation.questions:
            for mode in modes:
                body = {"query": question.text, "project": project, "limit": limit,
                        "search_mode": mode}
                start = time.perf_counter()
                found = _ok(*client.post("/v1/memories/search", body), "search")
                tallies[mode].latencies.append((time.perf_counter() - start) * 1000)
                ids = [(hit["memory"].get("metadata") or {}).get("dia_id")
                       for hit in found["data"]]
                rank = next((n for n, d in enumerate(ids, 1) if d in question.evidence), None)
                tallies[mode].ranks.append((question.category, rank))
        every.append(tallies)
    return every


def merged(per_conversation: list[dict[str, Tally]]) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    for tallies in per_conversation:
        for mode, tally in tallies.items():
            into = out.setdefault(mode, Tally())
            into.ranks += tally.ranks
            into.latencies += tally.latencies
    return out


def report(tallies: dict[str, Tally], out=print, groups: dict | None = None) -> None:
    """The table per mode (and, for each of ``groups``, {label: {mode: Tally}}, its own
    rows), then per mode and category."""
    out(f"{'mode':<10}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'MRR':>7}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'questions':>11}")
    for label, rows in {"": tallies, **(groups or {})}.items():
        for mode, tally in rows.items():
            s = tally.summary()
            name = f"{mode} {label}".strip()
            out(f"{name:<10}{s['r@1']:>7.3f}{s['r@5']:>7.3f}{s['r@10']:>7.3f}{s['mrr']:>7.3f}"
                f"{s['p50_ms']:>9.0f}{s['p95_ms']:>9.0f}{s['questions']:>11}")
    out("")
    out(f"{'mode':<10}{'category':<16}{'n':>5}{'R@1':>7}{'R@5':>7}{'R@10':>7}{'MRR':>7}")
    for mode, tally in tallies.items():
        for category, name in CATEGORIES.items():
            n = sum(1 for c, _ in tally.ranks if c == category)
            if n:
                out(f"{mode:<10}{f'{category} {name}':<16}{n:>5}{tally.recall(1, category):>7.3f}"
                    f"{tally.recall(5, category):>7.3f}{tally.recall(10, category):>7.3f}"
                    f"{tally.mrr(category):>7.3f}")


def run(client, path: Path, *, conversations: str | None = None, modes=MODES,
        fmt: str = "turn", prefix: str = "locomo", out=print,
        groups: list[str] = ()) -> dict[str, Tally]:
    """Stores, asks and reports; ``groups``: conversation specs (positions within the data,
    e.g. ``0-4``) whose figures are printed apart as well."""
    everything = load(path, fmt)
    chosen = pick(everything, conversations)
    questions = sum(len(c.questions) for c in chosen)
    turns = sum(len(c.turns) for c in chosen)
    skipped = sum(c.unanswerable for c in chosen)
    out(f"{len(chosen)} conversations ({', '.join(c.sample_id for c in chosen)}): {turns} turns, "
        f"{questions} questions of categories 1-4 ({skipped} left out: no evidence turn named)")
    projects = [project_name(prefix, c, fmt) for c in chosen]
    for conversation, project in zip(chosen, projects, strict=True):
        ingest(client, conversation, project, log=out)
    per_conversation = ask(client, chosen, projects, modes)
    tallies = merged(per_conversation)
    apart = {}
    for spec in groups:
        wanted = {id(c) for c in pick(everything, spec)}
        apart[spec] = merged([t for c, t in zip(chosen, per_conversation, strict=True)
                              if id(c) in wanted])
    report(tallies, out=out, groups=apart)
    return tallies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="locomo10.json, locomo10.zip, a directory or one conversation")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("MEMORYRELAY_API_KEY"),
                        help="an API key of the server (default: $MEMORYRELAY_API_KEY)")
    parser.add_argument("--conversations", default=None, metavar="SPEC",
                        help="positions in the data: 0-4, 5-9, 0,3 (default: all)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--format", choices=FORMATS, default="turn")
    parser.add_argument("--agent-prefix", default="locomo")
    parser.add_argument("--groups", default="", metavar="SPECS",
                        help="conversation subsets reported apart too, e.g. '0-4;5-9'")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("--key or MEMORYRELAY_API_KEY is needed")
    modes = [m for m in args.modes.split(",") if m]
    tallies = run(HttpClient(args.url, args.key), args.data, conversations=args.conversations,
                  modes=modes, fmt=args.format, prefix=args.agent_prefix,
                  groups=[g for g in args.groups.split(";") if g])
    if args.json:
        args.json.write_text(json.dumps({m: t.summary() for m, t in tallies.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
