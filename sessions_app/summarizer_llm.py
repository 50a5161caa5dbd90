"""The optional LLM summary of a session (MEMORYRELAY_SUMMARY_LLM_URL and _MODEL set):
the session's memories, oldest first, within an input budget, summarized by an
OpenAI-compatible chat endpoint. Any failure is an LLMUnavailable and the caller keeps the
extractive summary (summarizer.py)."""

from __future__ import annotations

from memoryrelay_site.llm import ChatEndpoint, LLMUnavailable, chat_endpoint

from .summarizer import SummaryItem

SETTINGS = "MEMORYRELAY_SUMMARY_LLM"
INPUT_CHARS = 24_000  # about 6,000 tokens of notes: fits the small local models' context
PROMPT = (
    "You summarize an AI agent's work session from the notes it stored. Write the decisions, "
    "findings, results and open tasks that matter later, in a few short sentences of plain "
    "text. Leave out routine notes (reruns, breaks, status pings) and repeats. Never add "
    "anything the notes do not say.")


def summary_endpoint() -> ChatEndpoint | None:
    return chat_endpoint(SETTINGS)


def llm_summarize(items: list[SummaryItem], *, budget: int, endpoint: ChatEndpoint) -> str:
    """At most ``budget`` characters. ``items`` newest first (as the services read them):
    the newest that fit INPUT_CHARS go in, oldest first."""
    lines, used = [], 0
    for item in items:
        line = (f"- [{item.memory_type or 'fact'}, importance {item.importance:.1f}] "
                f"{' '.join(item.content.split())}")
        if used + len(line) > INPUT_CHARS and lines:
            break
        lines.append(line[:INPUT_CHARS])
        used += len(line) + 1
    if not lines:
        raise LLMUnavailable("no notes to summarize")
    answer = endpoint.complete(
        [{"role": "system", "content": PROMPT},
         {"role": "user", "content": "Notes, oldest first:\n" + "\n".join(reversed(lines))}],
        max_tokens=max(budget // 3, 64))
    return answer[:budget].strip()
