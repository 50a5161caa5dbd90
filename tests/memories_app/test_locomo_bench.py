"""benchmarks/locomo_bench.py run through the API on a tiny conversation in LoCoMo's own
format, so the script keeps working as the server changes."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from memories_app.models import Memory
from tests.conftest import requires_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import locomo_bench  # noqa: E402

pytestmark = requires_model

CONVERSATION = {
    "speaker_a": "Ana",
    "speaker_b": "Ben",
    "session_1_date_time": "1:56 pm on 8 May, 2023",
    "session_1": [
        {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a grey kitten called Pixel."},
        {"speaker": "Ben", "dia_id": "D1:2", "text": "Lovely! I started learning the cello."},
        {"speaker": "Ana", "dia_id": "D1:3", "text": "Look at this", "img_url": ["x"],
         "blip_caption": "a photo of a lighthouse at dusk"},
    ],
    "session_2_date_time": "10:00 am on 9 June, 2023",
    "session_2": [
        {"speaker": "Ben", "dia_id": "D2:1", "text": "My cello teacher moved to Lisbon."},
        {"speaker": "Ana", "dia_id": "D2:2", "text": "Pixel knocked my coffee over today."},
    ],
}
QA = [
    {"question": "What instrument is Ben learning?", "answer": "cello", "evidence": ["D1:2"],
     "category": 4},
    {"question": "Where did the cello teacher move?", "answer": "Lisbon",
     "evidence": ["D:2:1"], "category": 1},  # LoCoMo's own typo, normalized
    {"question": "What did Ana photograph?", "answer": "a lighthouse",
     "evidence": ["D1:03"], "category": 3},
    {"question": "When did Ana adopt Pixel?", "answer": "May 2023", "evidence": ["D1:1"],
     "category": 2},
    {"question": "What is Ben's kitten called?", "adversarial_answer": "Pixel",
     "evidence": ["D1:1"], "category": 5},  # adversarial: not asked
    {"question": "Does Ana like tea?", "answer": "unknown", "evidence": [], "category": 4},
]


class ApiClient:
    """The script's client interface over the test client."""

    def __init__(self, client):
        self.client = client

    def post(self, path, body):
        response = self.client.post(path, body, format="json")
        return response.status_code, response.json()

    def get(self, path):
        response = self.client.get(path)
        return response.status_code, response.json()


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "locomo10.json"
    path.write_text(json.dumps([{"sample_id": "conv-1", "conversation": CONVERSATION,
                                 "qa": QA}]))
    return path


def test_the_bench_stores_turns_asks_questions_and_reports_every_mode(client, data):
    lines = []
    tallies = locomo_bench.run(ApiClient(client), data, out=lines.append, groups=["0"])
    assert lines[0].startswith("1 conversations (conv-1): 5 turns, 4 questions")
    assert "(1 left out: no evidence turn named)" in lines[0]
    contents = dict(Memory.objects.values_list("metadata__dia_id", "content"))
    assert contents["D1:2"] == "[8 May, 2023] Ben: Lovely! I started learning the cello."
    assert contents["D1:3"] == ("[8 May, 2023] Ana: Look at this "
                                "[photo: a photo of a lighthouse at dusk]")
    assert set(tallies) == set(locomo_bench.MODES)
    for tally in tallies.values():
        assert [c for c, _ in tally.ranks] == [4, 1, 3, 2] and len(tally.latencies) == 4
        assert tally.recall(10) == 1.0  # five memories: every evidence turn is in the top 10
    keyword = tallies["keyword"].ranks
    assert keyword[0] == (4, 1) and keyword[1] == (1, 1)  # "cello" / "Lisbon" at the top
    assert tallies["hybrid"].summary()["categories"][4]["questions"] == 1
    assert any(line.startswith("hybrid ") for line in lines)
    assert any(line.startswith("keyword 0 ") and line.endswith(" 4") for line in lines)
    assert any("2 temporal" in line for line in lines)


def test_a_second_run_reuses_the_stored_agent(client, data):
    locomo_bench.run(ApiClient(client), data, modes=("keyword",), out=lambda line: None)
    lines = []
    locomo_bench.run(ApiClient(client), data, modes=("keyword",), out=lines.append)
    assert "locomo-conv-1-turn: 5 memories already stored, reused" in lines[1]
    assert Memory.objects.count() == 5


def test_the_data_can_be_the_zip_of_one_file_per_conversation(tmp_path):
    archive = tmp_path / "locomo10.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for number in (30, 26):
            z.writestr(f"data/locomo10_v2/{number}.json", json.dumps({**CONVERSATION,
                                                                      "qa": QA}))
    conversations = locomo_bench.load(archive, "bare")
    assert [c.sample_id for c in conversations] == ["conv-26", "conv-30"]
    assert conversations[0].turns[1].content == "Lovely! I started learning the cello."
    assert [c.sample_id for c in locomo_bench.pick(conversations, "1")] == ["conv-30"]
