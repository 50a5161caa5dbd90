"""Forms of a word that the text indexes' stemmers do not join.

Both databases stem what they index and what they are asked (SQLite's FTS5 ``porter``
tokenizer, PostgreSQL's ``english`` configuration): "painted" and "painting" find "paint".
Neither knows irregular forms: "When did Caroline go to the support group?" does not find
"I went to a support group yesterday", nor "Which child ..." "the children". A query term
with such forms matches a memory holding any of them (:mod:`.vectors`). On LoCoMo
(benchmarks/locomo_bench.py, all ten conversations) hybrid recall@5 went from 0.800 to 0.805
and recall@10 from 0.863 to 0.866 on SQLite, from 0.797 to 0.801 and 0.861 to 0.865 on
PostgreSQL; keyword recall@10 from 0.796 to 0.807 and 0.803 to 0.812.

The groups are common irregular verbs and plurals. A form that is mostly another word is
left out, so that it never pulls in that word: "ground" (grind), "wound" (wind), "rose"
(rise), "bit" (bite), "fall" (autumn), "ring", "spring", "lead", "bear", "lie", "lay" and the
like; so are forms that are stop words ("was", "had", "did"). SQLite's Porter stemmer
leaves "try" and "tried" apart (PostgreSQL joins them): they are grouped too.
"""

from __future__ import annotations

GROUPS = (
    # irregular verbs: base, past, past participle
    "become became", "begin began begun", "blow blew blown", "break broke broken",
    "bring brought", "build built", "burn burnt", "buy bought", "catch caught",
    "choose chose chosen", "come came", "dig dug", "draw drew drawn", "dream dreamt",
    "drink drank drunk", "drive drove driven", "eat ate eaten", "feed fed", "feel felt",
    "fight fought", "find found", "fly flew flown", "forget forgot forgotten",
    "forgive forgave forgiven", "freeze froze frozen", "get got gotten", "give gave given",
    "go went gone", "grow grew grown", "hang hung", "hear heard", "hide hid hidden",
    "hold held", "keep kept", "know knew known", "learn learnt", "leave left", "lend lent",
    "lose lost", "make made", "mean meant", "meet met", "pay paid", "ride rode ridden",
    "run ran", "say said", "see saw seen", "seek sought", "sell sold", "send sent",
    "shake shook shaken", "shoot shot", "show shown", "sing sang sung", "sit sat",
    "sleep slept", "speak spoke spoken", "spend spent", "stand stood", "steal stole stolen",
    "swim swam swum", "take took taken", "teach taught", "tell told", "think thought",
    "throw threw thrown", "understand understood", "wake woke woken", "wear wore worn",
    "win won", "write wrote written",
    # verbs the Porter stemmer leaves apart from their past
    "try tried tries", "cry cried",
    # irregular plurals
    "child children", "person people", "man men", "woman women", "foot feet",
    "tooth teeth", "mouse mice", "wife wives", "knife knives", "shelf shelves",
    "wolf wolves", "half halves",
)


def _index() -> dict[str, tuple[str, ...]]:
    index: dict[str, tuple[str, ...]] = {}
    for group in GROUPS:
        words = group.split()
        for word in words:
            index[word] = (word, *(other for other in words if other != word))
    return index


_FORMS = _index()


def forms(term: str) -> tuple[str, ...]:
    """``term`` and its other forms (``term`` first): ``forms("go")`` is ("go", "went",
    "gone"); a term of no group is alone."""
    return _FORMS.get(term, (term,))
