"""Timestamped questions over a text stream, with answers correct by construction.

StreamingBench asks questions at timestamps of a stream; SVBench chains them (a later question
depends on an earlier answer); StreamEQA sorts them into backward (about what was read), real-time
(about now) and forward (about what has not arrived: the system must wait for the evidence).
Here the stream is a book read aloud word by word (the shipped Pride and Prejudice), and every
answer is computed from the text itself:

- ``speaker_last`` (backward): the character last named as speaking (``," said Elizabeth``,
  ``!" cried Mrs. Bennet``, ...) before the question;
- ``mentions`` (backward): how many times a name was read so far (whole words);
- ``chapter`` (real-time): the chapter being read now;
- ``speaker_next`` (forward): the next character named as speaking; its evidence is the word
  where that attribution ends, and a system is scored on the answer and its delay after it;
- ``chain`` (multi-turn): after a ``speaker_last`` question, how many times the last word of
  that character's name was read so far: its answer depends on the earlier one.

Times are word indices of the stream (``words``: the book's whitespace-separated words, its
``--`` dashes split off, from Chapter 1 to the end of the novel); a question at ``t`` is asked
once words ``0 .. t-1`` were read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

VERBS = "said|replied|cried|answered|returned|added|continued|observed"
TITLES = "Mr|Mrs|Miss|Lady|Sir|Colonel"
# ," said Elizabeth   !" cried Mrs. Bennet   ?" replied Miss Bingley; a title alone is no name
# (a stream cut after 'said Mr.' has not named the speaker yet)
ATTRIBUTION = re.compile(
    rf'[,!?.]" (?:{VERBS}) ((?:(?:{TITLES})\.? )?(?!(?:{TITLES})\b)[A-Z][a-z]+)')
NAMES = ("Elizabeth", "Darcy", "Jane", "Bingley", "Wickham", "Lydia", "Collins", "Charlotte")


@dataclass(frozen=True)
class Question:
    """``kind`` (see the module), asked at word ``t``; ``answer`` is a string; ``evidence`` the
    word index from which the answer is determined (``t`` unless forward); ``parent`` the index
    of the question a chain question depends on."""

    qid: int
    kind: str
    t: int
    text: str
    answer: str
    evidence: int
    parent: int | None = None


@dataclass(frozen=True)
class Book:
    """The word stream and what the questions are computed from."""

    words: list[str]
    chapters: list[int]  # word index where each chapter starts
    speeches: list[tuple[int, str]]  # (word index where the attribution ends, speaker)


def load_book(path: Path) -> Book:
    """Pride and Prejudice from the Gutenberg text: words from 'Chapter 1' to the end marker."""
    if not path.exists():
        raise FileNotFoundError(f"expected the shipped text at {path}")
    raw = path.read_text(encoding="utf-8")
    start, end = raw.find("Chapter 1\n"), raw.find("*** END OF THIS PROJECT")
    if start < 0 or end < 0:
        raise ValueError(f"{path}: expected a Gutenberg Pride and Prejudice ('Chapter 1' and the "
                         "end marker)")
    words = raw[start:end].replace("--", " -- ").split()  # the book's dashes join words
    chapters = [i for i, w in enumerate(words[:-1]) if w == "Chapter" and words[i + 1].isdigit()]
    # attributions on the words joined by single spaces: character offsets -> word indices
    text = " ".join(words)
    starts = [0]
    for w in words[:-1]:
        starts.append(starts[-1] + len(w) + 1)
    speeches = []
    for m in ATTRIBUTION.finditer(text):
        last_word = _word_at(starts, m.end() - 1)
        speeches.append((last_word + 1, canonical(m.group(1))))
    return Book(words, chapters, speeches)


def _word_at(starts: list[int], offset: int) -> int:
    import bisect

    return bisect.bisect_right(starts, offset) - 1


def canonical(name: str) -> str:
    """'Mr. Darcy' and 'Darcy' are one character; 'Mrs. Bennet' and 'Mr. Bennet' are two."""
    for title in ("Mr. ", "Colonel "):
        if name.startswith(title) and name[len(title):] in ("Darcy", "Bingley", "Wickham",
                                                             "Collins", "Fitzwilliam"):
            return name[len(title):]
    return name


def bare(word: str) -> str:
    """A word as a name is matched: punctuation and ``_`` stripped from both ends, then a
    possessive ``'s`` ("Darcy's" is Darcy, "Darcys" is not)."""
    w = word.strip(".,;:!?\"'()_-")
    return w[:-2] if w.endswith("'s") else w


def mentions(words: list[str], name: str, t: int) -> int:
    """Occurrences of ``name`` as a whole word (``bare``) in words ``0 .. t-1``."""
    return sum(1 for w in words[:t] if bare(w) == name)


def chapter_at(book: Book, t: int) -> int:
    """The chapter being read when word ``t`` is next (1-based)."""
    return sum(1 for c in book.chapters if c < t) or 1


def questions(book: Book, every: int = 400, start: int = 200, end: int | None = None
              ) -> list[Question]:
    """Questions every ``every`` words from ``start`` to ``end``, cycling through the kinds;
    reproducible (no randomness: the kinds and names follow the question's index)."""
    end = min(end or len(book.words), len(book.words))
    out: list[Question] = []
    kinds = ("speaker_last", "mentions", "chapter", "speaker_next")
    for n, t in enumerate(range(start, end, every)):
        kind = kinds[n % len(kinds)]
        qid = len(out)
        if kind == "speaker_last":
            before = [s for at, s in book.speeches if at <= t]
            if not before:
                continue
            out.append(Question(qid, kind, t, "Who was the last character named as speaking?",
                                before[-1], t))
            follow = min(t + every // 2, end - 1)
            out.append(Question(qid + 1, "chain", follow, "How many times has the last word of "
                                "that character's name been read so far?",
                                str(_named(book, before[-1], follow)), follow, parent=qid))
        elif kind == "mentions":
            name = NAMES[(n // len(kinds)) % len(NAMES)]
            out.append(Question(qid, kind, t, f"How many times has the name {name} been read "
                                "so far?", str(mentions(book.words, name, t)), t))
        elif kind == "chapter":
            out.append(Question(qid, kind, t, "Which chapter is being read now?",
                                str(chapter_at(book, t)), t))
        else:
            after = [(at, s) for at, s in book.speeches if t < at <= end]  # arrives
            if not after:
                continue
            at, who = after[0]
            out.append(Question(qid, kind, t, "Who will be the next character named as "
                                "speaking? Answer when it happens.", who, at))
    return out


def _named(book: Book, speaker: str, t: int) -> int:
    """Mentions of a speaker by the last word of their name ('Mrs. Bennet' -> 'Bennet')."""
    return mentions(book.words, speaker.split()[-1], t)
