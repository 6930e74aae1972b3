"""FinalMLP: the gates and the bilinear fusion against a hand computation, the verbs' contracts,
learning a synthetic click stream, refusing bad input, and a short run on MovieLens."""

import copy
import json
import math
import pickle

import numpy as np
import pytest
import torch

from streamwise.learn.finalmlp import FinalMLP, PlainMLP, bucket
from streamwise.learn.metrics import ROCAUC

FIELDS = {"user": "cat", "item": "cat", "tags": "multi", "price": "num"}


def _tiny(cls=FinalMLP, **kw):
    args = dict(dim=3, stream1=(6, 4), stream2=(6,), heads=2, gate_hidden=5, buckets=97,
                dtype=torch.float64, seed=1)
    if cls is FinalMLP:
        args.update(gate1=("user",), gate2=())  # one gate on a field, one on a learned vector
    m = cls(FIELDS, **{**args, **kw})
    with torch.no_grad():
        for p in m.net.parameters():  # biases too, so that nothing is zero by construction
            p.add_(0.3 * torch.randn_like(p))
    return m


def _mlp(seq, v):
    """A torch Sequential of Linear/ReLU applied by hand, in numpy."""
    for layer in seq:
        if isinstance(layer, torch.nn.Linear):
            v = layer.weight.detach().numpy() @ v + layer.bias.detach().numpy()
        else:
            v = np.maximum(v, 0.0)
    return v


def _embeddings(m, x):
    T = m.net.table.detach().numpy()
    row = lambda f, v: T[bucket(f"{f}={v}", 97)]  # noqa: E731
    return [row("user", x["user"]), row("item", x["item"]),
            np.mean([row("tags", t) for t in x["tags"]], 0), x["price"] * row("price", "")]


def _sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_gates_and_bilinear_fusion_by_hand():
    m = _tiny()
    x = {"user": 7, "item": "film", "tags": ["b", "a", "c"], "price": -0.5}
    e = _embeddings(m, x)
    flat = np.concatenate(e)
    g1 = 2 / (1 + np.exp(-_mlp(m.net.gates[0], e[0])))  # conditioned on the user's embedding
    g2 = 2 / (1 + np.exp(-_mlp(m.net.gates[1], m.net.context[0].detach().numpy())))
    o1, o2 = _mlp(m.net.stream1, g1 * flat), _mlp(m.net.stream2, g2 * flat)
    b, w1, w2, w3 = (p.detach().numpy() for p in (m.net.b, m.net.w1, m.net.w2, m.net.w3))
    logit = 0.0
    for j in range(2):  # heads: chunks of 2 (o1) and 3 (o2)
        a, c = o1[2 * j:2 * j + 2], o2[3 * j:3 * j + 3]
        logit += b[j] + w1[j] @ a + w2[j] @ c + sum(a[i] * w3[j, i, k] * c[k]
                                                    for i in range(2) for k in range(3))
    p = m.predict_proba_one(x)
    assert p[True] == pytest.approx(_sigmoid(logit), abs=1e-13)
    assert p[False] == pytest.approx(1 - _sigmoid(logit), abs=1e-13)
    rows, offsets, weights = m._batch([m.encode(x)])
    with torch.no_grad():
        emb = m.net.embed(rows, offsets, weights, 1)
        assert np.allclose(emb.flatten().numpy(), flat, atol=1e-14)
        assert np.allclose(m.net.gate(0, emb)[0].numpy(), g1, atol=1e-14)
        assert np.allclose(m.net.gate(1, emb)[0].numpy(), g2, atol=1e-14)
        assert m.net.fusion(torch.tensor(o1)[None], torch.tensor(o2)[None]).item() == \
            pytest.approx(logit, abs=1e-13)
    # a batch gives the same probabilities as one record at a time
    xs = [x, {**x, "user": 8, "tags": []}, {**x, "item": 3, "price": 2}]
    many = m.predict_proba_many(xs)
    assert np.allclose(many[:, 1], [m.predict_proba_one(r)[True] for r in xs], atol=1e-14)
    assert np.allclose(many.sum(1), 1.0)


def test_plain_mlp_by_hand():
    m = _tiny(PlainMLP)
    x = {"user": 1, "item": 2, "tags": ("z",), "price": 3.0}
    h = _mlp(m.net.stream1, np.concatenate(_embeddings(m, x)))
    logit = m.net.head.weight.detach().numpy()[0] @ h + m.net.head.bias.item()
    assert m.predict_proba_one(x)[True] == pytest.approx(_sigmoid(logit), abs=1e-13)


def _state(m):
    return copy.deepcopy((m.net.state_dict(), m.opt.state_dict(), m.sparse_opt.state_dict(),
                          list(m.recent), m.pending, m.steps))


def _same(a, b):
    for p, q in zip(a[0].values(), b[0].values()):
        assert torch.equal(p, q)
    assert repr(a[1:]) == repr(b[1:])


def test_predict_verbs_change_nothing():
    m = _tiny(every=2)
    x = {"user": 1, "item": 2, "tags": ["t"], "price": 1.0}
    m.learn_one(x, True)  # one record kept, no step yet
    before, pickled = _state(m), pickle.dumps(m)
    new = {"user": 12345, "item": "never seen", "tags": ["new"], "price": 0.0}  # hashed rows
    m.predict_proba_one(new), m.predict_one(x), m.predict_proba_many([x, new])
    _same(before, _state(m))
    assert pickle.dumps(m) == pickled  # as tests/learn/test_verbs.py holds every estimator
    m.learn_one(new, False)  # the second record: a step on both
    assert m.steps == 1 and m.pending == 0
    assert not torch.equal(before[0]["table"], m.net.table.detach())


def _synthetic(n, rng):
    """Users and items in 4 groups; a user likes items of its own group (plus noise)."""
    users, items = rng.integers(0, 40, n), rng.integers(0, 200, n)
    liked = (users % 4 == items % 4) ^ (rng.random(n) < 0.1)
    return [({"user": int(u), "item": int(i), "tags": [f"g{i % 4}"], "price": float(i % 7)},
             bool(t)) for u, i, t in zip(users, items, liked)]


def test_learns_a_synthetic_click_stream():
    rng = np.random.default_rng(0)
    m = FinalMLP(FIELDS, gate1=("user",), gate2=("item", "tags"), dim=8, stream1=(32, 16),
                 stream2=(16,), lr=1e-2, every=4, seed=0)
    for x, y in _synthetic(6000, rng):
        m.learn_one(x, y)
    test = _synthetic(2000, rng)
    auc = ROCAUC()
    for (_, y), p in zip(test, m.predict_proba_many([x for x, _ in test])[:, 1]):
        auc.update(y, float(p))
    assert auc.get() > 0.8


@pytest.mark.parametrize("x, y, match", [
    ({"user": 1, "item": 2, "tags": []}, True, "missing field 'price'"),
    ({"user": 1, "item": 2, "tags": [], "price": 1, "colour": "red"}, True, "colour"),
    ({"user": 1, "item": 2, "tags": [], "price": float("nan")}, True, "'price'.*finite"),
    ({"user": float("nan"), "item": 2, "tags": [], "price": 1}, True, "'user'.*category"),
    ({"user": [1], "item": 2, "tags": [], "price": 1}, True, "'user'"),
    ({"user": 1, "item": 2, "tags": "ab", "price": 1}, True, "'tags'.*list"),
    ({"user": 1, "item": 2, "tags": [1.5], "price": 1}, True, "'tags'"),
    ({"user": 1, "item": 2, "tags": [], "price": "1"}, True, "'price'.*number"),
    ({"user": 1, "item": 2, "tags": [], "price": True}, True, "'price'"),
    ([1, 2, 3], True, "expected a dict"),
    ({"user": 1, "item": 2, "tags": [], "price": 1}, None, "boolean label"),
    ({"user": 1, "item": 2, "tags": [], "price": 1}, 2, "boolean label"),
])
def test_bad_input_is_refused_and_changes_nothing(x, y, match):
    m = _tiny()
    m.learn_one({"user": 1, "item": 2, "tags": ["a"], "price": 1.0}, True)
    before = _state(m)
    with pytest.raises(ValueError, match=match):
        m.learn_one(x, y)
    if y is True:  # the record itself is bad: predicting refuses it too
        with pytest.raises(ValueError, match=match):
            m.predict_proba_one(x)
    with pytest.raises(ValueError, match=match):
        m.learn_many([{"user": 1, "item": 2, "tags": [], "price": 0}, x], [True, y])
    _same(before, _state(m))


def test_bad_batches_and_settings():
    m = _tiny()
    good = {"user": 1, "item": 2, "tags": [], "price": 0}
    with pytest.raises(ValueError, match="one label per record"):
        m.learn_many([good, good], [True])
    with pytest.raises(ValueError, match="sequence of dicts"):
        m.predict_proba_many(good)
    assert m.predict_proba_many([]).shape == (0, 2)
    with pytest.raises(ValueError, match="multiples of heads"):
        FinalMLP(FIELDS, stream1=(6,), stream2=(5,), heads=2)
    with pytest.raises(ValueError, match="gate1"):
        FinalMLP(FIELDS, gate1=("nobody",))
    with pytest.raises(ValueError, match="kinds"):
        FinalMLP({"user": "text"})
    with pytest.raises(ValueError, match="window"):
        FinalMLP(FIELDS, every=4, window=2)
    m.learn_many([good, {**good, "user": 2}], np.array([True, False]))  # float64, fused Adam
    assert m.steps == 1


class Constant:
    """Predicts the same probability for every record."""

    def predict_proba_one(self, x):
        return {True: 0.55, False: 0.45}

    def predict_one(self, x):
        return True

    def learn_one(self, x, y=None):
        pass


def test_short_prequential_run_on_movielens_beats_a_constant():
    from streamwise.learn.evaluate import prequential
    from streamwise.learn.metrics import LogLoss
    from streamwise.learn.movielens import CLICK_FIELDS, ITEM_FIELDS, USER_FIELDS, load_movielens

    torch.set_num_threads(1)
    stream = list(load_movielens().click_stream(3000))
    model = FinalMLP(CLICK_FIELDS, USER_FIELDS, ITEM_FIELDS, every=4)
    ours = prequential(model, stream, [ROCAUC(), LogLoss()], progress=False).final()
    constant = prequential(Constant(), stream, [ROCAUC(), LogLoss()], progress=False).final()
    assert constant["ROCAUC"] == 0.5
    assert ours["ROCAUC"] > 0.6


def test_bench_writes_its_report(tmp_path):
    from streamwise.bench.finalmlp import GRID, one_hot, run

    assert one_hot({"user": 196, "genres": ("Comedy", "Drama")}) == {
        "user=196": 1.0, "genres=Comedy": 1.0, "genres=Drama": 1.0}
    result = run(tmp_path, limit=300, progress=False, tune=100)
    setup = result["_setup"]
    assert setup["records"] == 300 and setup["tune_records"] == 100
    assert set(setup["tuning"]) == set(GRID) and all(len(t) == 3 for t in setup["tuning"].values())
    assert result["FinalMLP"]["macs_per_sample"] > 0
    assert result["River FMClassifier"]["macs_per_sample"] is None  # no torch arithmetic
    saved = json.loads((tmp_path / "finalmlp.json").read_text())
    assert saved["FinalMLP"]["samples"] == 300 and (tmp_path / "finalmlp.png").is_file()
