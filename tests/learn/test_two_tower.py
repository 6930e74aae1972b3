import math
import pickle

import numpy as np
import pytest
import torch

from streamwise.learn.two_tower import (
    Popularity,
    Refit,
    TwoTower,
    hit_and_ndcg,
    prequential_retrieval,
    rank_of_true,
)

rng = np.random.default_rng(0)
SU, SI = rng.random((5, 3)), rng.random((8, 4))
GENRES = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 0], [0, 1], [1, 1]], float)


def _stream(n=120, seed=1):
    r = np.random.default_rng(seed)
    return r.integers(0, 5, n), r.integers(0, 8, n)


def test_metrics_and_ranks_by_hand():
    hit, ndcg = hit_and_ndcg([1, 3, 10, 11], k=10)
    assert hit.tolist() == [1, 1, 1, 0]
    assert ndcg == pytest.approx([1.0, 0.5, 1 / math.log2(11), 0.0])
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.7]])
    prio = np.array([4, 3, 2, 1, 0])  # item 3 wins ties against item 2
    # true item 2 (0.5): ahead are items 1 (0.9), 4 (0.7) and 3 (tie, lower priority) -> rank 4
    none = np.zeros((1, 5), bool)
    assert rank_of_true(scores, np.array([2]), none, prio).tolist() == [4]
    excl = none.copy()
    excl[0, 1] = True  # an excluded item does not count
    assert rank_of_true(scores, np.array([2]), excl, prio).tolist() == [3]
    pop = Popularity(2, 5)
    rep = prequential_retrieval(pop, [0, 1, 0, 1], [2, 2, 4, 2], batch=1)
    # 2nd: item 2 alone on top -> rank 1; 3rd: user 0 rated item 2 before, so it is excluded
    # and item 4 ties the other zero-count items, ordered by the fixed priority
    prio = np.random.default_rng(0).permutation(5)
    assert rep.ranks[1] == 1 and rep.ranks[2] == 1 + int((prio[[0, 1, 3]] < prio[4]).sum())


@pytest.mark.parametrize("graph", [False, True])
def test_prequential_order(graph):
    """Two streams equal up to position n give equal ranks up to n."""
    u, i = _stream()
    u2, i2 = u.copy(), i.copy()
    n = 70
    u2[n:], i2[n:] = (u[n:] + 1) % 5, (i[n:] + 3) % 8
    reps = [prequential_retrieval(TwoTower(SU, SI, dim=4, hidden=8, graph=graph, genres=GENRES),
                                  a, b, batch=8) for a, b in ((u, i), (u2, i2))]
    assert reps[0].ranks[:n] == reps[1].ranks[:n]
    assert reps[0].ranks[n + 8:] != reps[1].ranks[n + 8:]


def test_graph_aggregation_by_hand():
    m = TwoTower(SU, SI, dim=4, hidden=8, graph=True, genres=GENRES, replay=0)
    m.learn_many([0, 0, 1, 0], [1, 2, 2, 1])  # user 0: item 1 twice, item 2; user 1: item 2
    with torch.no_grad():
        fu = m.user_tower(torch.cat([m.user_emb.weight, m.su], 1))
        fi = m.item_tower(torch.cat([m.item_emb.weight, m.si], 1))
        u, i = m.towers()
        wu, wi = torch.softmax(m.user_mix, 0), torch.softmax(m.item_mix, 0)
        g = m.genre_emb
        # user 0: mean of items (1, 1, 2); genre profile (0+0+1, 1+1+1)/... normalised
        prof = (2 * torch.tensor([0.0, 1.0]) + torch.tensor([0.5, 0.5])) / 3
        want0 = wu[0] * fu[0] + wu[1] * (2 * fi[1] + fi[2]) / 3 + wu[2] * prof @ g
        assert torch.allclose(u[0], want0, atol=1e-6)
        # user 3: no neighbours, only its own tower
        assert torch.allclose(u[3], wu[0] * fu[3], atol=1e-6)
        # item 2: users 0 and 1 once each; its genres (1, 1) / 2
        want2 = wi[0] * fi[2] + wi[1] * (fu[0] + fu[1]) / 2 + wi[2] * (g[0] + g[1]) / 2
        assert torch.allclose(i[2], want2, atol=1e-6)
        assert torch.allclose(i[0], wi[0] * fi[0] + wi[2] * g[0], atol=1e-6)


def test_predicting_changes_nothing_and_bad_input_is_refused():
    for m in (TwoTower(SU, SI, dim=4, hidden=8), TwoTower(SU, SI, dim=4, graph=True,
                                                          genres=GENRES), Popularity(5, 8),
              Refit(lambda: TwoTower(SU, SI, dim=4), period=4, epochs=1)):
        m.learn_many([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
        state = pickle.dumps(m.model if isinstance(m, Refit) else m)
        m.scores_many([0, 1])
        m.predict_many([2], k=3)
        assert 0 <= m.predict_one({"user": 1}) < 8
        p = m.predict_proba_one({"user": 1})
        assert len(p) == 8 and sum(p.values()) == pytest.approx(1.0)
        for users, items, match in (([5], [0], "unknown user"), ([0], [8], "unknown item"),
                                    ([-1], [0], "unknown user"), ([np.nan], [0], "NaN"),
                                    ([0.5], [0], "integer"), ([0, 1], [0], "one item per"),
                                    (["a"], [0], "1-d array")):
            with pytest.raises(ValueError, match=match):
                m.learn_many(users, items)
        for x in ({"user": 9}, {"usr": 0}, {"user": float("nan")}, 3):
            with pytest.raises(ValueError):
                m.learn_one(x, 0)
        with pytest.raises(ValueError, match="unknown item"):
            m.learn_one({"user": 0}, 99)
        assert pickle.dumps(m.model if isinstance(m, Refit) else m) == state


def test_learning_from_the_stream_beats_chance():
    # two user groups, each always picks from its own half of the items
    r = np.random.default_rng(3)
    u = r.integers(0, 5, 800)
    i = np.where(u < 3, r.integers(0, 4, 800), r.integers(4, 8, 800))
    rep = prequential_retrieval(TwoTower(SU, SI, dim=8, lr=3e-2), u, i, batch=16, k=2,
                                exclude_seen=False)
    assert rep.metrics(400)["recall@2"] > 0.4  # chance: 2 of 8 items
    curve = rep.curve(200)
    assert curve["end"] == [200, 400, 600, 800]
