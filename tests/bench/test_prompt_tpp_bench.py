"""``streamwise bench prompt-tpp`` on the first MovieLens ratings, and its event sequences."""

import json

import numpy as np

from streamwise.bench.prompt_tpp import period_sequences, run


def test_period_sequences_by_hand():
    users = np.array([1, 1, 2, 1, 2, 2, 1])
    hours = np.array([0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 10.0])
    marks = np.array([0, 1, 2, 0, 1, 1, 2])
    train, test = period_sequences(users, hours, marks, periods=2, max_len=2, held_out=0.0)
    assert test == [[], []]
    # period 0 is [0, 5): user 1 has 0, 1, 3 (pieces [0, 1] and a lone [3], dropped); user 2
    # has one event there (dropped); period 1: user 2's 8, 9; user 1's lone 10 is dropped
    got = [[(t.tolist(), k.tolist()) for t, k in p] for p in train]
    assert got == [[([0.0, 1.0], [0, 1])], [([8.0, 9.0], [1, 1])]]


def test_prompt_tpp_bench_small(tmp_path):
    res = run(tmp_path, periods=3, epochs=1, limit=15000, progress=False)
    assert json.loads((tmp_path / "prompt_tpp.json").read_text()) == json.loads(json.dumps(res))
    assert (tmp_path / "prompt_tpp.png").stat().st_size > 10_000
    assert set(res["models"]) == {"Poisson", "Hawkes", "neural, fine-tuned",
                                  "neural, frozen after period 1", "PromptTPP"}
    for log in res["models"].values():
        assert len(log["next"]) == 2 and [len(row) for row in log["seen"]] == [1, 2, 3]
        s = log["summary"]
        assert 0 <= s["next_period_mark_accuracy"] <= 1 and s["forgetting_log_likelihood"] >= 0
    # a frozen model scores the same on period 1 after every period
    frozen = res["models"]["neural, frozen after period 1"]["seen"]
    assert frozen[0][0] == frozen[-1][0]
