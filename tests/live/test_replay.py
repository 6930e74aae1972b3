"""The replay harness: a real-time clock with one worker, scoring at emission time."""

import itertools

import pytest

from streamwise.core.data_paths import shared_data
from streamwise.live.questions import Question, load_book, questions
from streamwise.live.reader import TextReader
from streamwise.live.replay import replay, score

PATH = shared_data() / "text" / "pride_and_prejudice.txt"
needs_book = pytest.mark.skipif(not PATH.exists(), reason=f"needs the shipped text at {PATH}")


@pytest.fixture(scope="module")
def book():
    return load_book(PATH)


@needs_book
@pytest.mark.parametrize("batch", [1, 24])  # a chapter heading inside one read is still seen
def test_the_reader_with_full_memory_answers_all_and_waits_for_forward_evidence(book, batch):
    end = 30_000
    qs = questions(book, end=end)
    r = replay(book.words[:end], qs, TextReader(), rate=3.0, compute_scale=0.0, batch=batch)
    s = score(qs, r, rate=3.0)
    for kind in ("speaker_last", "mentions", "chapter", "speaker_next", "chain"):
        assert s[kind]["accuracy"] == 1.0, (kind, s[kind])
        # no compute: the only delay is waiting for the end of the read that held the evidence
        assert s[kind]["delay_s_p90"] <= (batch - 1) / 3.0 + 1e-9 and s[kind]["guesses"] == 0
    # reads hold at most `batch` words and a question cuts the read it falls in
    assert all(0 < b - a <= batch for a, b in r.reads) and r.reads[-1][1] == end
    stops = {b for _, b in r.reads}
    assert all(q.t in stops for q in qs)
    forward = [q for q in qs if q.kind == "speaker_next"]
    # the moment it is read: the end of the read holding the evidence
    assert all(r.answers[q.qid][0] == next(b for a, b in r.reads if a < q.evidence <= b) / 3.0
               for q in forward)


@needs_book
def test_a_bounded_window_forgets_counts_and_chains_follow_its_answers(book):
    end = 30_000
    qs = questions(book, end=end)
    s = score(qs, replay(book.words[:end], qs, TextReader(window=300), rate=3.0,
                         compute_scale=0.0), rate=3.0)
    assert s["mentions"]["accuracy"] < 0.5 and s["chain"]["accuracy"] < 0.5
    assert s["speaker_next"]["accuracy"] == 1.0  # perception of the present is not memory


class Fake:
    """Asks cost 2 s on the fake timer; forward questions are guessed at once."""

    def __init__(self, timer):
        self.timer = timer

    def read(self, words):
        pass

    def ask(self, q):
        self.timer.spend = 2.0
        return "Elizabeth" if q.kind == "speaker_next" else q.answer if q.qid % 2 else None

    def poll(self):
        return []


class FakeTimer:
    def __init__(self):
        self.now, self.spend, self.ticks = 0.0, 0.0, itertools.count()

    def __call__(self):
        if next(self.ticks) % 2:  # the end of a call: the spend set inside it
            self.now += self.spend
            self.spend = 0.0
        return self.now


def test_compute_delays_answers_and_the_words_behind_them():
    words = [f"w{i}" for i in range(20)]
    qs = [Question(0, "mentions", 5, "?", "a", 5), Question(1, "mentions", 6, "?", "b", 6),
          Question(2, "speaker_next", 6, "?", "Jane", 15)]
    timer = FakeTimer()
    r = replay(words, qs, Fake(timer), rate=1.0, timer=timer)
    # question 0 (asked at 5 s) keeps the worker until 7 s; question 1, asked at 6 s, runs
    # 7-9 s; question 2 runs 9-11 s, a guess before its evidence (15 s)
    assert r.answers[1] == (9.0, "b") and r.answers[2][0] == 11.0
    assert max(r.read_lag_s) == pytest.approx(4.0)  # word 7 (at 7 s) waited until 11 s
    s = score(qs, r, rate=1.0)
    assert s["mentions"]["unanswered"] == 1 and s["mentions"]["accuracy"] == 0.5
    assert s["speaker_next"]["guesses"] == 1 and s["speaker_next"]["accuracy"] == 0.0
    assert s["mentions"]["delay_s_p50"] == 3.0  # the answered one: 9 s - 6 s
    assert s["ingestion"]["busy_fraction"] == pytest.approx(6.0 / 20)


def test_a_system_that_joins_late_reads_from_there_on_the_same_clock():
    class Recorder:
        def __init__(self):
            self.read_words = []

        def read(self, words):
            self.read_words += words

        def ask(self, q):
            return str(len(self.read_words))

        def poll(self):
            return []

    words = [f"w{i}" for i in range(20)]
    qs = [Question(0, "mentions", 12, "?", "4", 12)]
    system = Recorder()
    r = replay(words, qs, system, rate=2.0, batch=4, start=8)
    assert system.read_words == words[8:]  # never the words before the start
    assert r.answers[0][1] == "4"  # asked at word 12: words 8..11 read
    assert r.answers[0][0] >= 12 / 2.0  # on the stream's clock, from word 0
    assert len(r.read_lag_s) == 3 and r.seconds == pytest.approx(6.0)
    with pytest.raises(ValueError, match="expected 8 <= t <= 20"):
        replay(words, [Question(1, "chapter", 5, "?", "1", 5)], Recorder(), rate=1.0, start=8)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rate > 0"):
        replay(["a"], [], TextReader(), rate=0.0)
    with pytest.raises(ValueError, match="expected 0 <= t <= 1"):
        replay(["a"], [Question(0, "chapter", 5, "?", "1", 5)], TextReader(), rate=1.0)
    with pytest.raises(ValueError, match="window"):
        TextReader(window=2)
