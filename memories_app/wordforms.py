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
leaves "try" and "tried" apart (PostgreSQL joins them): they are grouped too, as are "cry",
"dry", "spy", "die", "tie" and "flies"; not "dying", "tying" or "skies", which it reads as
"dy", "ty" and "ski" ("dyed", "ty" for thanks, "skiing").

The Porter stemmer also splits two kinds of families that PostgreSQL's keeps whole, found by
stemming the 57,000 most common English words (wordfreq) and those of LoCoMo with both: a final y
after a vowel becomes i unless a suffix follows ("deploys" is "deploi", "deployment"
"deploy"; employ, enjoy, annoy, destroy, portray, betray, play, joy...), and a final s goes
unless a suffix follows ("focus" is "focu", "focused" "focus"; status, bonus, virus,
serious, nervous, obvious...). A term of either gets, by rule, a form the stemmer reads as
the other stem (:func:`_y_form`, :func:`_us_form`); PostgreSQL reads that form as the
term's own lexeme but for a few ("pluses" for "plus"). On LoCoMo (SQLite) one question more
ranks first (hybrid recall@1 0.514 to 0.515; recall@5 and @10, 0.821 and 0.894, as they
were, in keyword mode too): few of its words are of these families. Most of the other
families PostgreSQL joins are -ly adverbs ("quickly", "quick"), left apart: its stemmer also
reads "likely" as "like", "hardly" as "hard" and "lately" as "late".
"""

from __future__ import annotations

import re

GROUPS = (
    # irregular verbs: base, past, past participle
    "become became", "begin began begun", "blow blew blown", "break broke broken",
    "bring brought", "build built", "burn burnt", "buy bought", "catch caught",
    "choose chose chosen", "come came", "dig dug", "draw drew drawn", "dream dreamt",
    "drink drank drunk", "drive drove driven", "eat ate eaten", "feed fed", "feel felt",
    "fight fought", "find found", "fly flew flown flies", "forget forgot forgotten",
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
    "try tried tries trying", "cry cried cries crying", "dry dried dries drying",
    "spy spied spies spying", "die died dies", "tie tied ties",
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


# SQLite's Porter stemmer turns the final y of a word into i when a vowel comes before it
# ("deploys", "deployed", "deploying" and "deploy" are all "deploi") but keeps it when a suffix
# it takes off later follows ("deployment", "employer", "enjoyable", "portrayal", "annoyance"
# are "deploy", "employ", ...): one word, two stems. PostgreSQL's stemmer keeps the y: one
# stem, the added form's too.
_Y_DERIVED = re.compile(r"([a-z]*[aeiou]y)(ments?|ers?|able|ably|ability|als?|ances?|ants?"
                        r"|ful|fulness|ness|isms?)")
_Y_INFLECTED = re.compile(r"([a-z]*[aeiou]y)(?:s|ed|ing)?")
# The least measure of the base for the stemmer to take a suffix off: 1 for those of its
# step 3 (and step 2's -fulness), 2 for those of its step 4 ("player" stays "player").
_Y_SHORT_SUFFIXES = ("ful", "fulness", "ness")
# Bases of measure 1 ("play", "key") keep their y before step 3's suffixes only, and what else
# the stemmer reads as such a base is mostly names ("Keyes", "Hayes": "key", "hay"; PostgreSQL
# joins those too): two of them have a derived word, and only those two get it as a form.
# Longer bases get their -ment form, a word or not ("annoyment"): the stemmer reads it as the
# base, so it finds the base's derived words, and nothing where there are none ("today").
_Y_SHORT_BASES = {"play": "playful", "joy": "joyful"}


def _measure(word: str) -> int:
    """The Porter stemmer's measure of ``word``: how many times a consonant follows a vowel,
    y being a vowel after a consonant ("play" 1, "deploy" 2, "try" 0)."""
    marks = ""
    for letter in word:
        vowel = letter in "aeiou" or (letter == "y" and marks[-1:] == "c")
        marks += "v" if vowel else "c"
    return marks.count("vc")


def _y_form(term: str) -> str | None:
    """The form joining ``term`` to its other stem on SQLite (see above): its base for a
    derived word ("deployment": "deploy"), a derived word for the base or an inflection of
    it ("deploys": "deployment", "joys": "joyful"); None for any other term."""
    if derived := _Y_DERIVED.fullmatch(term):
        base, suffix = derived.groups()
        least = 1 if suffix in _Y_SHORT_SUFFIXES else 2
        return base if _measure(base) >= least else None
    if inflected := _Y_INFLECTED.fullmatch(term):
        base = inflected.group(1)
        if base in _Y_SHORT_BASES:
            return _Y_SHORT_BASES[base]
        return base + "ment" if _measure(base) >= 2 else None
    return None


# Porter's first step drops the final s of a word unless it is "ss" ("focus" and "serious"
# are "focu" and "seriou") but not the s before a suffix it takes off ("focused", "focuses",
# "seriously", "seriousness" are "focus", "serious"); PostgreSQL's stemmer keeps the s of
# "-us". A word in -us has a derived word as a form (its plural; the -ness noun of an
# adjective in -ous), the adverb or noun of an adjective in -ous the adjective. An adjective
# whose measure before -ous is 2 or more is left alone: the stemmer then takes off "ou" and
# "ous" alike ("dangerous", "dangerously": "danger").
_OUS_DERIVED = re.compile(r"([a-z]+)ous(?:ly|ness)")
_US = re.compile(r"[a-z]{2,}us")


def _us_form(term: str) -> str | None:
    """The form joining ``term`` to its other stem on SQLite (see above): "seriously":
    "serious", "serious": "seriousness", "focus": "focuses"; None for any other term."""
    if derived := _OUS_DERIVED.fullmatch(term):
        return derived.group(1) + "ous" if _measure(derived.group(1)) < 2 else None
    if not _US.fullmatch(term):
        return None
    if term.endswith("ous"):
        return term + "ness" if _measure(term[:-3]) < 2 else None
    return term + "es"


def forms(term: str) -> tuple[str, ...]:
    """``term`` and its other forms (``term`` first): ``forms("go")`` is ("go", "went",
    "gone"), ``forms("deploys")`` ("deploys", "deployment"), ``forms("focus")`` ("focus",
    "focuses"); any other term is alone."""
    found = _FORMS.get(term, (term,))
    other = _y_form(term) or _us_form(term)
    return found if other is None or other in found else (*found, other)
