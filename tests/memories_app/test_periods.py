"""The period a query asks about and the day a memory is about (memories_app/periods.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from memories_app.periods import (
    Period,
    asked_period,
    asks_when,
    day_of,
    tells_when,
)

D = dt.date


@pytest.mark.parametrize("text, period", [
    ("What did Sam do on December 4, 2023?", Period(D(2023, 12, 4), D(2023, 12, 4))),
    ("What did Nate do for Joanna on 25 May, 2022?", Period(D(2022, 5, 25), D(2022, 5, 25))),
    ("What did Calvin book on 1st September 2023?", Period(D(2023, 9, 1), D(2023, 9, 1))),
    ("what changed on 2024-03-01?", Period(D(2024, 3, 1), D(2024, 3, 1))),
    ("Which hobby did Sam take up in May 2023?", Period(D(2023, 5, 1), D(2023, 5, 31))),
    ("Which classes did Evan join in mid-August 2023?", Period(D(2023, 8, 1), D(2023, 8, 31))),
    ("deploys in late Sept. 2021", Period(D(2021, 9, 1), D(2021, 9, 30))),
    ("the last week of February 2024", Period(D(2024, 2, 1), D(2024, 2, 29))),
    ("What charity event did John organize in 2024?", Period(D(2024, 1, 1), D(2024, 12, 31))),
    ("When did Caroline go to a pride parade in August?", Period(month=8)),
    ("How many tournaments has Nate won by July 10, 2022?", Period(None, D(2022, 7, 10))),
    ("Where was Tim in the week before 16 November 2023?", Period(None, D(2023, 11, 16))),
    ("How long has he had a pet, as of November 2023?", Period(None, D(2023, 11, 30))),
    ("What broke since March 2024?", Period(D(2024, 3, 1), None)),
    # the first date expression is the one asked about
    ("What happened on 3 May 2023, before 1 June 2023?", Period(D(2023, 5, 3), D(2023, 5, 3))),
])
def test_the_period_a_query_names(text, period):
    assert asked_period(text) == period


@pytest.mark.parametrize("text", [
    "What did Caroline paint?",
    "I may go to the lake",  # "may" is a month only where a date reads so
    "the meeting at 10:30",
    "error 2023 in the build",  # a number, not "in 2023"
    "what changed on 2023-02-30?",  # no such day
    "ticket 14-13-2022",
    "",
])
def test_no_period(text):
    assert asked_period(text) is None


def test_what_a_period_admits():
    day = Period(D(2023, 12, 4), D(2023, 12, 4))
    # told the day before (a date given loosely) up to a week later ("yesterday", "last week")
    assert [day.admits(D(2023, 12, n)) for n in (2, 3, 4, 11, 12)] == [
        False, True, True, True, False]
    month = Period(D(2023, 5, 1), D(2023, 5, 31))
    assert month.admits(D(2023, 5, 20)) and month.admits(D(2023, 6, 7))
    assert not month.admits(D(2023, 6, 8)) and not month.admits(D(2022, 5, 20))
    until = Period(None, D(2022, 7, 10))
    assert until.admits(D(2001, 1, 1)) and not until.admits(D(2022, 7, 18))
    since = Period(D(2024, 3, 1), None)
    assert since.admits(D(2030, 1, 1)) and not since.admits(D(2024, 2, 28))
    august = Period(month=8)
    assert august.admits(D(2019, 8, 31)) and august.admits(D(2023, 9, 7))
    assert not august.admits(D(2023, 9, 8)) and not august.admits(D(2023, 7, 31))


def test_the_day_a_memory_is_about():
    stored = dt.datetime(2026, 1, 2, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert day_of("[8 May, 2023] Caroline: I went to a support group", stored) == D(2023, 5, 8)
    assert day_of("Deployed 2024-03-01, then rolled back on 4 March 2024", stored) == D(
        2024, 3, 1)
    # no full date in the text: the day it was stored, in UTC
    assert day_of("We chose PostgreSQL in May", stored) == D(2026, 1, 3)
    assert day_of("on 31 February 2023", stored) == D(2026, 1, 3)
    assert day_of("nothing dated", None) is None


@pytest.mark.parametrize("text, asks", [
    ("When did Melanie paint a sunrise?", True),
    ("when is the release?", True),
    ("In what year did we move to PostgreSQL?", True),
    ("How long ago did Sam start hiking?", True),
    ("What time is the standup?", True),
    ("What did Melanie paint?", False),
    ("Where did we deploy it when it broke?", False),  # "when" not asked
])
def test_a_query_that_asks_when(text, asks):
    assert asks_when(text) is asks


@pytest.mark.parametrize("text, tells", [
    ("[8 May, 2023] Caroline: I went to a support group yesterday.", True),
    ("I painted that lake sunrise last year!", True),
    ("We moved to PostgreSQL in 2021.", True),
    ("Standup is at 9:30 every Monday", True),
    ("Been playing it for 3 months now", True),
    ("[8 May, 2023] Caroline: I love painting.", False),  # the header's date is no answer
    ("The cache lives in Redis.", False),
    ("", False),
])
def test_a_memory_that_tells_when(text, tells):
    assert tells_when(text) is tells
