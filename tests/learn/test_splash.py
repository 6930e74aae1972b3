import math
import pickle

import numpy as np
import pytest

from streamwise.learn.splash import (
    GenrePredictor,
    StreamState,
    genre_ndcg,
    period_labels,
    run_stream,
    select_groups,
)

GENRES = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], float)


def test_genre_ndcg_by_hand():
    y = np.array([0.5, 0.3, 0.2, 0.0])
    assert genre_ndcg(y, y)[0] == pytest.approx(1.0)
    d = [1, 1 / math.log2(3), 0.5, 1 / math.log2(5)]
    ideal = 0.5 * d[0] + 0.3 * d[1] + 0.2 * d[2]
    # prediction ranks genres 2, 0, 3, 1
    s = np.array([0.3, 0.0, 0.9, 0.1])
    assert genre_ndcg(y, s)[0] == pytest.approx((0.2 + 0.5 * d[1] + 0.3 * d[3]) / ideal)
    # k = 2 cuts after two ranks (ideal too)
    assert genre_ndcg(y, s, k=2)[0] == pytest.approx((0.2 + 0.5 * d[1]) / (0.5 + 0.3 * d[1]))
    # a tie of genres 0 and 1 on top shares their mean gain over ranks 1-2 (scikit-learn)
    t = np.array([0.5, 0.5, 0.2, 0.1])
    want = (0.4 * (d[0] + d[1]) + 0.2 * d[2] + 0.0 * d[3]) / ideal
    assert genre_ndcg(y, t)[0] == pytest.approx(want)
    assert math.isnan(genre_ndcg(np.zeros(4), s)[0])


def test_labels_state_and_baselines_by_hand():
    users, items, per = np.array([0, 0, 1, 0, 1]), np.array([0, 2, 3, 1, 1]), [0, 0, 0, 2, 2]
    labels = period_labels(users, items, per, GENRES)
    assert [p for p, *_ in labels] == [0, 2]
    p, act, lab, rows = labels[0]
    assert act.tolist() == [0, 1] and rows.tolist() == [0, 1, 2]
    # user 0: item 0 (genre 0) + item 2 (genres 0, 1: half each) -> (1.5, 0.5, 0) / 2
    assert lab.tolist() == [[0.75, 0.25, 0.0], [0.0, 0.0, 1.0]]
    st = StreamState(3, 4, GENRES, window=2, alpha=0.5)
    st.update(0, act, lab, users[rows], items[rows])
    st.update(2, *labels[1][1:3], users[labels[1][3]], items[labels[1][3]])
    assert st.persistence([0])[0].tolist() == [0.0, 1.0, 0.0]
    assert st.moving_average([0])[0] == pytest.approx([0.375, 0.625, 0.0])
    assert st.candidates([0])["ema"][0] == pytest.approx([0.375, 0.625, 0.0])
    # user 2 never seen: the mean of all four labels
    mean = (lab.sum(0) + labels[1][2].sum(0)) / 4
    assert st.persistence([2])[0] == pytest.approx(mean)
    assert st.moving_average([2])[0] == pytest.approx(mean)
    c = st.candidates([0, 2])
    assert c["structural"][0] == pytest.approx([math.log(4), math.log(1), math.log(3),
                                                math.log1p(0.8 ** 2 * 2 + 1)])
    assert c["profile"][0] == pytest.approx([2 / 4, 2 / 4, 0.0])
    with pytest.raises(ValueError, match="unknown user"):
        st.candidates([3])


def _stream(n=900, seed=0, days=30):
    r = np.random.default_rng(seed)
    u = r.integers(0, 20, n)
    it = np.where(u < 10, r.integers(0, 2, n), r.integers(2, 4, n))  # two tastes
    return u, it, np.sort(r.integers(0, days, n))


def test_prequential_order_and_selection():
    u, it, per = _stream()
    res = run_stream(u, it, per, GENRES, 20, 4, epochs=3)
    # the stream changed from day 20 on: every score for days < 20 stays the same
    u2, it2 = u.copy(), it.copy()
    late = per >= 20
    it2[late] = 3 - it2[late]
    res2 = run_stream(u2, it2, per, GENRES, 20, 4, epochs=3)
    early = res["periods"] < 20
    for name, v in res["ndcg"].items():
        assert np.array_equal(v[early], res2["ndcg"][name][early]), name
        assert not np.array_equal(v, res2["ndcg"][name])
    # the users keep their taste: their own history beats the global prior
    assert res["selected"]  # (per-user random features may well identify these users)
    assert np.mean(res["ndcg"]["SPLASH"]) > np.mean(res["ndcg"]["global mean"])
    groups = {"good": np.arange(40.0)[:, None] % 2, "noise": np.random.default_rng(1)
              .standard_normal((40, 3))}
    y = np.stack([groups["good"][:, 0], 1 - groups["good"][:, 0], np.zeros(40)], 1) * 0.8 + 0.1
    y[:, 2] = 0.1
    chosen, trace = select_groups(groups, y, np.repeat(np.arange(10), 4),
                                  candidates=("good", "noise"))
    assert chosen == ["good"] and trace[0]["groups"] == []


def test_predicting_changes_nothing_and_bad_input_is_refused():
    m = GenrePredictor(2, 3, hidden=8)
    X, Y = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[1.0, 0, 0], [0, 0.5, 0.5]])
    m.learn_many(X, Y, steps=3)
    state = pickle.dumps(m)
    p = m.predict_proba_many(X)
    assert p.shape == (2, 3) and p.sum(1) == pytest.approx([1, 1])
    assert m.predict_many(X).shape == (2,)
    assert m.predict_one({"f0": 0.0, "f1": 1.0}) in range(3)
    for bad_x, bad_y, match in ((np.array([[np.nan, 0.0]]), Y[:1], "finite"),
                                (np.zeros((1, 3)), Y[:1], r"\(n, 2\)"),
                                (X, np.array([[0.5, 0.6, 0], [1, 0, 0]]), "distributions"),
                                (X, Y[:1], "one label row")):
        with pytest.raises(ValueError, match=match):
            m.learn_many(bad_x, bad_y)
    with pytest.raises(ValueError, match="prior"):
        m.learn_many(X, Y, prior=-np.ones((2, 3)))
    with pytest.raises(ValueError, match="missing feature"):
        m.predict_one({"f0": 1.0})
    assert pickle.dumps(m) == state
    u, it, per = _stream(50)
    with pytest.raises(ValueError, match="unknown user"):
        run_stream(u, it, per, GENRES, 5, 4)
    with pytest.raises(ValueError, match="unknown item"):
        run_stream(u, it + 4, per, GENRES, 20, 4)
