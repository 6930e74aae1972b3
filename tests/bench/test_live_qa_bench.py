"""The live-questions benchmark end to end on a tiny random Llama and a character tokenizer."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers", reason="streamwise[hf] extra not installed")

from streamwise.bench.live_qa import KINDS, run  # noqa: E402
from streamwise.core.data_paths import shared_data  # noqa: E402
from tests.hf.conftest import tiny  # noqa: E402
from tests.live.test_lm_reader import CharTok  # noqa: E402

BOOK = shared_data() / "text" / "pride_and_prejudice.txt"


@pytest.mark.skipif(not BOOK.exists(), reason=f"needs the shipped text at {BOOK}")
def test_run_scores_every_policy_and_the_rule_reader_is_the_ceiling(tmp_path):
    res = run(tmp_path, fit_words=2400, eval_words=1200, every=150, batch=24, budgets=(60.0,),
              input_window=96, warm_words=600, pool=(4, 16), progress=False,
              model=tiny("llama"), tokenizer=CharTok())
    saved = json.loads((tmp_path / "live_qa.json").read_text())
    assert (tmp_path / "live_qa.png").stat().st_size > 0
    names = [p["policy"] for p in saved["policies"]]
    assert len(names) == 9 and names[0] == "rules, full memory"
    assert 0 < saved["constant_baseline"]["all"] <= 1
    assert "LM, pooled memory 4x16" in names and saved["lm_start_word"] == 1800
    for p in saved["policies"]:
        assert set(KINDS) <= set(p["score"])  # every kind asked (a forward one at 2850)
        assert p["score"]["all"]["questions"] == res["questions"] > 0
    assert saved["policies"][0]["score"]["all"]["accuracy"] == 1.0
    every = next(p for p in saved["policies"] if p["policy"].startswith("LM, think every"))
    assert every["note_tokens"] > 0
    assert saved["head"]["held_out_false_alarm"] <= 0.05 + 1e-9
    assert "head_on_eval" in next(p for p in saved["policies"] if p["policy"] == "LM, think at end")


def test_the_constant_baseline_answers_each_kind_with_its_most_frequent_answer():
    from streamwise.bench.live_qa import constant_baseline
    from streamwise.live.questions import Question

    qs = [Question(i, k, i, "?", a, i) for i, (k, a) in enumerate(
        [("chapter", "3"), ("chapter", "3"), ("chapter", "4"), ("speaker_last", "Jane")])]
    base = constant_baseline(qs)
    assert base["chapter"] == 2 / 3 and base["speaker_last"] == 1.0
    assert base["all"] == 3 / 4  # two chapters and the one speaker
