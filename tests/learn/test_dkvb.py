import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from streamwise.learn.dkvb import DKVB, pca_encoder
from streamwise.learn.mlp import MLPClassifier
from streamwise.learn.tasks import class_incremental, run_tasks


def _tiny():
    """Two codebooks of three keys on 2-d inputs, the heads being the input itself."""
    model = DKVB(2, codebooks=2, keys=3, key_dim=2, lr=3.0, epochs=1, batch=8)
    model.proj = torch.eye(2).repeat(2, 1, 1)
    model.keys = torch.tensor([[[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]],
                               [[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]]])
    return model


def test_lookup_average_and_the_local_update_by_hand():
    model = _tiny()
    x = np.array([[4.0, 0.5]])  # nearest: key 1 in codebook 0, key 0 in codebook 1
    assert model._select(x).tolist() == [[1], [0]]
    model.learn_many(x, ["a"])
    # first step: logits 0, softmax over one class = 1, g = 1 - 1 = 0: nothing moves
    assert torch.count_nonzero(model.values) == 0
    before = model.values.clone()
    model.learn_many(x, ["b"])
    # now two classes, logits (0, 0): g = (0.5, -0.5); each selected value moves by -lr*g/C
    step = -3.0 * torch.tensor([0.5, -0.5]) / 2
    assert torch.allclose(model.values[0, 1] - before[0, 1], step)
    assert torch.allclose(model.values[1, 0] - before[1, 0], step)
    moved = (model.values != 0).any(2)
    assert moved.sum() == 2  # every other key's value is untouched
    p = model.predict_proba_many(x)[0]
    assert p == pytest.approx(torch.softmax((model.values[0, 1] + model.values[1, 0]) / 2,
                                            0).numpy())


def test_a_new_class_on_other_keys_leaves_old_predictions_as_they_were():
    model = _tiny()
    a = np.array([[4.5, 0.2], [5.2, -0.3]])
    b = np.array([[0.1, 4.8], [-0.2, 5.5]])
    sel_a, sel_b = model._select(a), model._select(b)
    assert sel_a.tolist() == [[1, 1], [0, 0]] and sel_b.tolist() == [[2, 2], [1, 1]]
    model.learn_many(np.concatenate([a, b]), ["a", "a", "z", "z"])
    model.learn_many(np.concatenate([a, b]), ["a", "a", "z", "z"])
    under_a = model.values[torch.arange(2)[:, None], sel_a].clone()
    model.learn_many(b, ["b", "b"])
    assert torch.equal(model.values[torch.arange(2)[:, None], sel_a][..., :2], under_a)
    assert (model.values[torch.arange(2)[:, None], sel_a][..., 2] == 0).all()


def test_dkvb_forgets_less_than_fine_tuning_on_class_incremental_digits():
    X, y = load_digits(return_X_y=True)
    tasks = class_incremental("digits", X, y, per_task=2)
    unlabeled = np.concatenate([t.X_train for t in tasks])
    enc = pca_encoder(unlabeled, 32)
    dkvb = run_tasks(lambda: DKVB(64, enc, codebooks=32, keys=64).fit_keys(unlabeled), tasks,
                     "dkvb", task_aware=False, scratch=False, progress=False)
    mlp = run_tasks(lambda: MLPClassifier(64, epochs=5), tasks, "mlp", task_aware=False,
                    scratch=False, progress=False)
    assert mlp.forgetting > 0.8  # fine-tuning overwrites the old classes
    assert dkvb.forgetting < 0.35 and dkvb.average_accuracy > mlp.average_accuracy + 0.4


def test_predicting_changes_nothing_and_bad_input_is_refused():
    model = _tiny()
    with pytest.raises(ValueError, match="not fitted"):
        DKVB(2).learn_many(np.zeros((1, 2)), ["a"])
    model.learn_many(np.array([[4.0, 0.5], [0.0, 5.0]]), ["a", "b"])
    before = model.values.clone()
    model.predict_proba_many(np.array([[4.0, 0.5]]))
    model.predict_proba_one({"f0": 4.0, "f1": 0.5})
    for bad, match in ((np.zeros((1, 3)), r"\(n, 2\)"), (np.array([[np.nan, 0.0]]), "finite"),
                       ("x", "numeric")):
        with pytest.raises(ValueError, match=match):
            model.learn_many(bad, ["a"])
    for bad, match in (({"f0": 1.0}, "missing feature 'f1'"),
                       ({"f0": 1.0, "f1": 2.0, "f2": 0.0}, "unknown features"),
                       ({"f0": 1.0, "f1": "2"}, "expected a number")):
        with pytest.raises(ValueError, match=match):
            model.learn_one(bad, "a")
    with pytest.raises(ValueError, match="one label per row"):
        model.learn_many(np.zeros((2, 2)), ["a"])
    assert torch.equal(model.values, before) and model.classes == ["a", "b"]
    with pytest.raises(ValueError, match="at least 64 unlabeled rows"):
        DKVB(2, keys=64).fit_keys(np.zeros((10, 2)))
