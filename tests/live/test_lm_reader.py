"""The LM reader: questions on a fork of the cache, closed-set answers, notes, when to speak."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.live.lm_reader import SYSTEM, LMReader, Think, choose
from streamwise.live.questions import Question
from streamwise.live.replay import replay, score
from streamwise.live.speak import SpeakHead
from tests.hf.conftest import tiny

NAMES = ["Elizabeth", "Jane", "Mrs. Bennet", "Mr. Bennet", "Darcy"]
TEXT = ('"I cannot tell," said Elizabeth. "Nor can I," replied Jane, and they walked on '
        'towards the house where Mrs. Bennet was waiting for them.')
WORDS = TEXT.split(" ") * 3


class CharTok:
    """One id per printable ASCII character (4 .. 98): a tokenizer for a 100-token model."""

    def __call__(self, text, add_special_tokens=False):
        return SimpleNamespace(input_ids=[min(max(ord(c) - 28, 4), 98) for c in text])

    def decode(self, ids):
        return "".join(chr(i + 28) for i in ids)


@pytest.fixture(scope="module")
def model():
    return tiny("llama")


def reader(model, **kw):
    return LMReader(model, CharTok(), NAMES, input_window=64, output_window=48, **kw)


def _seq_logits(order):
    """A fake model whose next-token preference is fixed: ids earlier in ``order`` win."""
    logits = torch.zeros(100)
    for rank, i in enumerate(order):
        logits[i] = float(len(order) - rank)
    return logits


def test_choose_walks_the_options_and_stops_where_an_option_ends():
    fed = []

    def feed(t):
        fed.append(t)
        return _seq_logits([3, 6, 9])

    assert choose(_seq_logits([1, 4]), [[1, 2], [1, 3], [4]], [9], feed) == [1, 3]
    assert fed == [1]  # the last token is not fed
    # [5] is complete and [5, 6] continues: the stop token 9 outranks 6 here
    assert choose(_seq_logits([5]), [[5], [5, 6]], [9], lambda t: _seq_logits([9, 6])) == [5]
    assert choose(_seq_logits([5]), [[5], [5, 6]], [9], lambda t: _seq_logits([6, 9])) == [5, 6]


def test_calibration_ranks_against_the_question_without_the_stream():
    def logits(pref):
        out = torch.full((100,), -10.0)
        for i, v in pref.items():
            out[i] = v
        return out

    options, stop = [[1, 2], [4]], [9]
    ctx = logits({1: 3.0, 4: 2.5, 2: 5.0, 9: 0.0})  # with the stream: 1 (then 2) ahead of 4
    null = logits({1: 5.0, 4: 1.0, 2: 5.0})  # without it the model says 1 anyway
    assert choose(ctx, options, stop, lambda t: ctx) == [1, 2]
    got = choose(ctx, options, stop, lambda t: ctx, prior=(null, lambda t: null))
    assert got == [4]  # 4 gained most from what was read


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=4), min_size=1, max_size=8),
       st.integers(0, 10_000))
def test_choose_always_returns_one_of_the_options(options, seed):
    g = torch.Generator().manual_seed(seed)
    out = choose(torch.randn(12, generator=g), options, [10, 11],
                 lambda t: torch.randn(12, generator=g))
    assert out in options


@pytest.mark.parametrize("ask_segment", ["input", "output"])
def test_a_question_never_moves_what_later_reads_see(model, ask_segment):
    a, b = reader(model, ask_segment=ask_segment), reader(model, ask_segment=ask_segment)
    for r in (a, b):
        r.read(WORDS[:10])
    a.ask(Question(0, "speaker_last", 10, "Who was the last character named as speaking?",
                   "Elizabeth", 10))
    a.ask(Question(1, "mentions", 10, "How many times has the name Jane been read so far?",
                   "0", 10))
    for r in (a, b):
        r.read(WORDS[10:20])
    assert a.features is not None and b.features is not None
    np.testing.assert_array_equal(a.features, b.features)
    assert a.answer_calls == 2 and b.answer_calls == 0


def test_pooled_memory_keeps_what_left_the_input_window(model):
    pooled, plain = reader(model, pool=(4, 8)), reader(model)
    for r in (pooled, plain):
        r.read(WORDS[:40])  # about 200 characters, past the 64-token input window
    entries = pooled.cache.layers[0].entries
    memory = entries["seg"][0] == pooled.cache.policy.segments.index("input:memory")
    assert int(memory.sum()) == 8  # the slots are full
    assert pooled.cache.stored_tokens() <= pooled.cache.policy.bound
    left = (entries["seg"][0] == 0) & (entries["lidx"][0] >= 4) & (
        entries["lidx"][0] <= pooled.input_tokens - 1 - 64)  # out of the window, not yet pooled
    assert int(left.sum()) < 4  # at most the group still filling
    assert pooled.cache.stored_tokens() == plain.cache.stored_tokens() + 8 + int(left.sum())
    assert pooled.features is not None and plain.features is not None
    assert np.abs(pooled.features - plain.features).max() > 1e-4  # the memory is attended to


@pytest.mark.parametrize("calibrate", [False, True])
def test_answers_are_always_a_listed_name_or_a_number(model, calibrate):
    r = reader(model, calibrate=calibrate)
    r.read(WORDS[:12])
    name = r.ask(Question(0, "speaker_last", 12, "Who spoke last?", "Jane", 12))
    count = r.ask(Question(1, "mentions", 12, "How many times has the name Jane been read?",
                           "1", 12))
    chapter = r.ask(Question(2, "chapter", 12, "Which chapter is being read now?", "1", 12))
    chain = r.ask(Question(3, "chain", 12, "How many times has that name been read?", "1", 12,
                           parent=0))
    assert name in NAMES
    assert count is not None and count.isdigit() and int(count) < 1000
    assert chapter is not None and chapter.isdigit() and int(chapter) < 62
    assert chain is not None and chain.isdigit()
    if calibrate:  # the content-free context stays as it was: the instruction alone
        assert r.null is not None and r.null.get_seq_length() == len(r._ids(SYSTEM))


def test_notes_every_page_spend_their_tokens_and_stay_in_the_cache(model):
    plain = reader(model)
    noted = reader(model, think=Think("every", tokens=3, page=20))
    for i in range(0, 60, 6):
        plain.read(WORDS[i:i + 6])
        noted.read(WORDS[i:i + 6])
    assert plain.note_tokens == 0
    assert 1 <= noted.note_tokens // 3 <= noted.input_tokens // 20 and noted.note_tokens % 3 == 0
    assert len(noted.notes) == noted.note_tokens
    assert not np.allclose(plain.features, noted.features)  # later reads see the notes


def _head(fire: bool, dim: int) -> SpeakHead:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, dim)), np.arange(200) % 5 == 0
    head = SpeakHead(false_alarm=0.1).fit(x, y.astype(int))
    head.threshold = 0.0 if fire else 1.1
    return head


def test_forward_questions_wait_for_the_head_and_are_answered_when_it_fires(model):
    dim = 2 * model.config.hidden_size
    q = Question(0, "speaker_next", 5, "Who will speak next?", "Jane", 15)
    silent = reader(model, head=_head(False, dim))
    silent.read(WORDS[:5])
    assert silent.ask(q) is None
    silent.read(WORDS[5:15])
    assert silent.poll() == [] and silent.waiting == [q]
    loud = reader(model, head=_head(True, dim))
    loud.read(WORDS[:5])
    assert loud.ask(q) is None
    loud.read(WORDS[5:15])
    ready = loud.poll()
    assert [qid for qid, _ in ready] == [0] and ready[0][1] in NAMES and loud.waiting == []


def test_adaptive_notes_stay_within_the_budget(model):
    dim = 2 * model.config.hidden_size
    r = reader(model, head=_head(True, dim), think=Think("adaptive", tokens=4, budget=50.0))
    for i in range(0, 60, 4):
        r.read(WORDS[i:i + 4])
    assert 0 < r.note_tokens <= r.input_tokens * 50.0 / 1000 + 1e-9


def test_the_reader_runs_in_the_replay_harness(model):
    qs = [Question(0, "speaker_last", 8, "Who spoke last?", "Elizabeth", 8),
          Question(1, "chapter", 16, "Which chapter is being read now?", "1", 16)]
    r = replay(WORDS[:24], qs, reader(model), rate=4.0, batch=4)
    s = score(qs, r, rate=4.0)
    assert set(r.answers) == {0, 1} and s["all"]["unanswered"] == 0


def test_bad_settings_are_refused(model):
    with pytest.raises(ValueError, match="mode"):
        Think("sometimes")
    with pytest.raises(ValueError, match="character name"):
        LMReader(model, CharTok(), [])
    with pytest.raises(ValueError, match="ask_segment must be 'input' or 'output'"):
        LMReader(model, CharTok(), NAMES, ask_segment="notes")
