"""The text and vector indexes of decisions and patterns, built by their migrations the way
memories' are (``memories_app.vectors.SearchIndex``): what ``search.run`` reads."""

from memories_app.vectors import SearchIndex

DECISION_INDEX = SearchIndex(
    table="knowledge_app_decision", name="decision", columns=["title", "rationale"]
)
PATTERN_INDEX = SearchIndex(
    table="knowledge_app_pattern", name="pattern", columns=["title", "description"]
)
