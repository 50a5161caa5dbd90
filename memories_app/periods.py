"""Dates in search: the period a query asks about, and the day a memory is about.

"What did Sam do on December 4, 2023?", "Which hobby did Sam take up in May 2023?", "What
did we decide in 2024?": a query that names a date, a month or a year asks about what
happened then, and a memory about another time seldom answers it. So, in every mode
(:func:`memories_app.search.run`), when the query names a period, a candidate whose day
falls outside it scores ``OUTSIDE_WEIGHT`` times as much.

* The query's period is its first date expression: a day ("4 December 2023", "December
  4th, 2023", "2023-12-04"), a month of a year ("May 2023"), a year ("in 2024") or a month
  of any year ("in August"). Words such as "may" count as a month only where a date
  expression reads so ("in May", "May 3").
* A memory's day is the first full date its text gives ("[5 December, 2023] Sam: ..." or
  "Deployed 2024-03-01"), else the day it was stored (``created_at``, UTC).
* A memory is inside the period from the day before it to ``LATE_DAYS`` days after it: what
  happened on a day is often told a few days later ("yesterday", "last week"). "By", "before",
  "until" or "as of" a date open the period's start; "since" or "after" one, its end.

And a query that asks when ("When did Melanie paint a sunrise?", "In what year ...") is
answered by a memory that says when: one whose text (after a leading ``[...]`` header, such
as a date stamp) has no time expression ("yesterday", "last week", "two years ago", "next
month", a weekday, a month, a year, a clock time) scores ``UNTIMED_WEIGHT`` times as much
(:func:`asks_when`, :func:`tells_when`).

Measured on LoCoMo (benchmarks/locomo_bench.py), tuned on conversations 0-4 and checked on
5-9: 13% of its questions name a period, 17% ask when; 82% of the turns that answer the
latter say when, against 18% of all turns. No statement is added: the text and the stored
time are on the rows already read.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

OUTSIDE_WEIGHT = 0.7
LATE_DAYS = 7
UNTIMED_WEIGHT = 0.7

_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): n for n, name in enumerate(calendar.month_abbr) if name}
_MONTHS["sept"] = 9
# The patterns read lowercased text; a month is any word, kept only if _MONTHS has it (one
# alternation of every month's name would be tried at every place of the text).
_MON = r"(?P<mon>[a-z]+)\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
# Full dates first: a memory's day is read only from these.
_FULL = [re.compile(p) for p in (
    r"(?<!\d)(?P<year>(?:19|20)\d\d)-(?P<mnum>[01]?\d)-(?P<day>[0-3]?\d)(?!\d)",
    rf"\b{_DAY}\s+(?:of\s+)?{_MON},?\s+{_YEAR}\b",
    rf"\b{_MON}\s+{_DAY},?\s+{_YEAR}\b",
)]
_UNTIL = re.compile(r"\b(?:by|before|until|till|as of|prior to|up to)\s+(?:the\s+)?$")
_SINCE = re.compile(r"\b(?:since|after)\s+(?:the\s+)?$")
_PARTIAL = [re.compile(p) for p in (
    rf"\b{_MON},?\s+{_YEAR}\b",
    rf"\b(?:in|during|of|by|since|throughout)\s+{_YEAR}\b",
    rf"\b{_DAY}\s+(?:of\s+)?{_MON}\b",
    rf"\b{_MON}\s+{_DAY}\b(?!\s*[:.]\d)",
    rf"\b(?:in|during|of|since|throughout|early|mid|late)[\s-]+{_MON}(?:,?\s+{_YEAR})?\b",
)]


@dataclass(frozen=True)
class Period:
    """From ``start`` to ``end`` (None: open); ``month`` alone for a month of no year."""

    start: dt.date | None = None
    end: dt.date | None = None
    month: int | None = None

    def admits(self, day: dt.date) -> bool:
        if self.month is not None:  # a month of any year, told up to LATE_DAYS later
            return self.month in (day.month, (day - dt.timedelta(days=LATE_DAYS)).month)
        if self.start is not None and day < self.start - dt.timedelta(days=1):
            return False
        return self.end is None or day <= self.end + dt.timedelta(days=LATE_DAYS)


def asked_period(text: str) -> Period | None:
    """The period the query's first date expression names, or None."""
    text = text.lower()
    found = _first(text, _FULL + _PARTIAL)
    if found is None:
        return None
    at, (year, month, day) = found
    if not year:
        return Period(month=month) if month else None
    try:
        start = dt.date(year, month or 1, day or 1)
    except ValueError:
        return None
    end = (start if day else
           dt.date(year, month, calendar.monthrange(year, month)[1]) if month else
           dt.date(year, 12, 31))
    if _UNTIL.search(text[max(0, at - 20):at]):
        return Period(None, end)
    if _SINCE.search(text[max(0, at - 20):at]):
        return Period(start, None)
    return Period(start, end)


def day_of(text: str, stored: dt.datetime | None) -> dt.date | None:
    """The first full date of a memory's ``text``, else the UTC day it was ``stored``."""
    found = _first((text or "").lower(), _FULL)
    if found is not None:
        try:
            return dt.date(*found[1])
        except ValueError:
            pass
    if stored is None:
        return None
    return (stored.astimezone(dt.UTC) if stored.tzinfo else stored).date()


def _first(text: str, patterns: list[re.Pattern]) -> tuple | None:
    """(where, (year, month, day)) of the earliest match of ``patterns`` in the lowercased
    ``text`` (None where not given), or None."""
    best = None
    for pattern in patterns:
        # once a match is found, only one starting before it can be earlier (60: longer
        # than any date expression)
        for match in pattern.finditer(text, 0, len(text) if best is None else best[0] + 60):
            parts = match.groupdict()
            at = min(match.start(name) for name, value in parts.items() if value)
            if best is not None and at >= best[0]:
                break
            if parts.get("mon") and parts["mon"] not in _MONTHS:
                continue
            month = (int(parts["mnum"]) if parts.get("mnum")
                     else _MONTHS[parts["mon"]] if parts.get("mon") else None)
            day = int(parts["day"]) if parts.get("day") else None
            if (month is not None and not 1 <= month <= 12) or (day is not None
                                                                 and not 1 <= day <= 31):
                continue
            year = int(parts["year"]) if parts.get("year") else None
            best = (at, (year, month, day))
            break
    return best


_ASKS_WHEN = re.compile(r"^\W*when\b|\bhow long ago\b|\b(?:what|which|in what) "
                        r"(?:year|month|date|day|time)\b", re.IGNORECASE)
_HEADER = re.compile(r"^\s*\[[^\]]*\]")
_WORD = re.compile(r"[a-z]+")
_TIME_WORDS = frozenset(
    "yesterday today tonight tomorrow ago last next weekend since recently lately earlier "
    "soon monday tuesday wednesday thursday friday saturday sunday".split()
) | {name.lower() for name in calendar.month_name if name}
_TIME = re.compile(r"\bthis (?:week|month|year|weekend|morning|summer|spring|fall|winter)\b|"
                   r"\b(?:(?:19|20)\d\d|\d+ (?:days?|weeks?|months?|years?)|\d{1,2}:\d\d|"
                   r"\d{1,2} ?[ap]m)\b")


def asks_when(text: str) -> bool:
    """Whether the query asks when something happened."""
    return bool(_ASKS_WHEN.search(text))


def tells_when(text: str) -> bool:
    """Whether a memory's text, after a leading ``[...]`` header, places anything in time."""
    said = _HEADER.sub("", (text or "").lower(), count=1)
    return not _TIME_WORDS.isdisjoint(_WORD.findall(said)) or bool(_TIME.search(said))
