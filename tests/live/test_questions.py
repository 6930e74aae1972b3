"""The timestamped question set: every answer re-derived from the text by a second route."""

import re

import pytest

from streamwise.core.data_paths import shared_data
from streamwise.live.questions import ATTRIBUTION, canonical, load_book, mentions, questions

PATH = shared_data() / "text" / "pride_and_prejudice.txt"
pytestmark = pytest.mark.skipif(not PATH.exists(), reason=f"needs the shipped text at {PATH}")


@pytest.fixture(scope="module")
def book():
    return load_book(PATH)


@pytest.fixture(scope="module")
def qs(book):
    return questions(book)


def _read(book, t):
    return " ".join(book.words[:t])


def test_the_book_is_the_novel_and_the_set_covers_every_kind(book, qs):
    assert book.words[:2] == ["Chapter", "1"] and len(book.chapters) == 61
    kinds = {q.kind for q in qs}
    assert kinds == {"speaker_last", "mentions", "chapter", "speaker_next", "chain"}
    assert len(qs) > 300 and [q.qid for q in qs] == list(range(len(qs)))
    assert questions(book) == qs  # reproducible


def test_a_question_checked_by_hand(book):
    # Chapter 1: '"But you forget, mamma," said Elizabeth,' is the first named speaker
    at, who = book.speeches[0]
    assert who == "Elizabeth" and book.words[at - 2 : at] == ["said", "Elizabeth,"]
    assert " ".join(book.words[at - 6 : at - 2]) == '"But you forget, mamma,"'


def test_backward_answers_match_the_text_read_so_far(book, qs):
    for q in qs:
        text = _read(book, q.t)
        if q.kind == "speaker_last":
            last = list(re.finditer(ATTRIBUTION, text))[-1]
            assert canonical(last.group(1)) == q.answer and q.evidence == q.t
        elif q.kind == "mentions":
            name = re.search(r"the name (\w+)", q.text).group(1)
            found = re.findall(rf"(?<![A-Za-z]){name}(?:'s)?(?![A-Za-z'])", text)
            assert str(len(found)) == q.answer, q
        elif q.kind == "chapter":
            heads = re.findall(r"(?:^| )Chapter (\d+) ", text + " ")
            assert heads[-1] == q.answer


def test_forward_answers_are_the_next_attribution_after_the_question(book, qs):
    for q in (q for q in qs if q.kind == "speaker_next"):
        assert q.evidence > q.t
        # from three words back: an attribution may have begun before the question
        before = len(" ".join(book.words[q.t - 3 : q.t]))
        ahead = " ".join(book.words[q.t - 3 : q.evidence])
        found = [m for m in re.finditer(ATTRIBUTION, ahead) if m.end() > before]
        assert len(found) == 1, q  # the first one to end after the question ...
        assert found[0].end() > len(ahead) - len(book.words[q.evidence - 1]) - 1  # ... at the end
        assert canonical(found[0].group(1)) == q.answer


def test_chain_answers_depend_on_the_earlier_answer(book, qs):
    by_id = {q.qid: q for q in qs}
    chains = [q for q in qs if q.kind == "chain"]
    assert chains
    for q in chains:
        parent = by_id[q.parent]
        assert parent.kind == "speaker_last" and parent.t < q.t
        assert q.answer == str(mentions(book.words, parent.answer.split()[-1], q.t))


def test_mentions_counts_whole_words_and_possessives():
    words = ["Darcy,", "Darcy's", "_Darcy_", "Darcys", "MrDarcy", "Darcy"]
    assert mentions(words, "Darcy", 6) == 4 and mentions(words, "Darcy", 2) == 2


def test_forward_questions_only_where_the_evidence_arrives_in_the_stream(book):
    end = 3000  # the attribution after word 2850 ends at 3420: no forward question there
    qs = questions(book, every=150, start=2400, end=end)
    assert all(q.evidence <= end for q in qs)
    assert not any(q.kind == "speaker_next" and q.t == 2850 for q in qs)


def test_a_missing_or_foreign_text_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected the shipped text"):
        load_book(tmp_path / "none.txt")
    (tmp_path / "other.txt").write_text("no chapters here")
    with pytest.raises(ValueError, match="Chapter 1"):
        load_book(tmp_path / "other.txt")
