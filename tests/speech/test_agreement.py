"""Local agreement commits only what successive hypotheses agree on, and the bench's measures
(flicker, streaming-perception WER) count what they say, on cases worked by hand."""

import numpy as np
import torch
from torch import nn

from streamwise.bench.asr import Run, flicker, perception_terms
from streamwise.models.asr import FRAME_SAMPLES
from streamwise.speech.agreement import LocalAgreement
from streamwise.speech.corpus import WORDS
from streamwise.speech.recognizer import Word
from streamwise.speech.streams import TimedStream


class EdgeUnsure(nn.Module):
    """A stand-in recogniser: each 40 ms frame's label is its audio's mean, except that the
    newest frame is misheard as the next word (what a model at its right edge does)."""

    def forward(self, x):
        n = x.shape[-1] // FRAME_SAMPLES
        labels = x[0, 0, : n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES).mean(1).round().long()
        if n and labels[-1] > 0:
            labels[-1] = labels[-1] % len(WORDS) + 1
        return torch.nn.functional.one_hot(labels, len(WORDS) + 1).T[None].float().log()


def _frames(labels):
    return torch.cat([torch.full((FRAME_SAMPLES,), float(v)) for v in labels])


def test_agreement_commits_the_truth_and_retracts_the_misheard_edge():
    truth = [0, 0, 3, 3, 0, 0, 0, 7, 0, 0, 0, 0, 12, 12, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0]
    la = LocalAgreement(EdgeUnsure(), window_s=0.4, agree=2, jitter=1, edge_s=0.04)
    committed, shown = [], []
    for k in range(len(truth)):
        up = la.push(_frames(truth[k:k + 1]))  # update k has heard frames 0..k
        committed += up.committed
        shown += up.committed + up.tentative
        # a word at frame f is misheard at update f, heard right at f + 1 (one hypothesis),
        # agreed on at f + 2: never committed earlier
        assert all(k >= w.frame + 2 for w in up.committed)
    committed += la.close().committed
    assert [w.text for w in committed] == [WORDS[v - 1] for v in (3, 7, 12, 5)]
    assert [w.frame for w in committed] == [2, 7, 12, 19]  # absolute, though the window slid
    misheard = {WORDS[v % len(WORDS)] for v in (3, 7, 12, 5)}
    assert misheard & {w.text for w in shown}  # the edge was shown as tentative...
    run = Run([], shown, committed, 0.0)
    gone, distinct = flicker(run, jitter=1)
    assert gone == len(misheard) and distinct == 8  # ...and every misheard word was retracted


def test_perception_terms_judge_each_instant():
    s = TimedStream(np.zeros(int(2.9 * 16000), np.float32), ("one", "two"), (1.0, 2.0), "x")
    # emitted half a second after each word ends; instants every 0.5 s up to 2.5 s
    edits, refs = perception_terms(s, [("one", 1.5), ("two", 2.5)], step_s=0.5, tail_s=0.0)
    assert (edits, refs) == (2, 6)  # late at 1.0 (one missing) and at 2.0 (two missing)
    edits, refs = perception_terms(s, [("one", 1.0), ("two", 2.0)], step_s=0.5, tail_s=0.0)
    assert (edits, refs) == (0, 6)  # on time: no error at any instant


def test_flicker_counts_distinct_shown_words():
    shown = [Word("one", 5, 0), Word("one", 6, 0), Word("nine", 9, 0), Word("two", 20, 0)]
    run = Run([], shown, [Word("one", 5, 0), Word("two", 21, 0)], 0.0)
    assert flicker(run, jitter=1) == (1, 3)
