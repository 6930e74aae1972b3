import numpy as np
import pytest
from river import tree as river_tree

from streamwise.learn.base import Labels
from streamwise.learn.mlp import MLPClassifier
from streamwise.learn.river_protocol import FromRiver
from streamwise.learn.tasks import TaskReport, classification_tasks, run_tasks, split


def test_protocol_metrics_by_their_definitions():
    r = TaskReport("x", ["a", "b", "c"], accuracy=[[0.9], [0.7, 0.8], [0.6, 0.5, 0.95]],
                   scratch=[0.85, 0.8, 0.9])
    assert r.average_accuracy == pytest.approx((0.6 + 0.5 + 0.95) / 3)
    assert r.forgetting == pytest.approx(((0.9 - 0.6) + (0.8 - 0.5)) / 2)
    assert r.forward_transfer == pytest.approx((0.05 + 0.0 + 0.05) / 3)


def test_real_task_stream_is_built_from_shipped_data():
    tasks = classification_tasks(limit=300)
    assert [t.name for t in tasks] == ["digits", "wine", "breast_cancer", "iris", "phishing",
                                       "bananas", "segment", "shuttle"]
    widths = {t.X_train.shape[1] for t in tasks}
    assert widths == {64}
    for t in tasks:
        assert abs(t.X_train[:, 0].mean()) < 1e-9 and all(c.startswith(t.name + ":")
                                                          for c in t.classes)
        assert len(t.X_train) + len(t.X_test) <= 300


def test_run_tasks_fills_the_matrix_and_counts_compute():
    tasks = classification_tasks(limit=200)[:3]
    mlp = run_tasks(lambda: MLPClassifier(64, epochs=2), tasks, "mlp", progress=False)
    tree = run_tasks(lambda: FromRiver(river_tree.HoeffdingTreeClassifier()),
                     tasks, "tree", scratch=False, progress=False)
    assert [len(row) for row in mlp.accuracy] == [1, 2, 3]
    assert np.all(np.diff(mlp.macs) > 0) and mlp.to_dict()["macs"] is not None
    assert tree.to_dict()["macs"] is None and tree.forward_transfer is None
    assert mlp.average_accuracy > 0.6 and len(mlp.scratch) == 3
    with pytest.raises(ValueError, match="at least one task"):
        run_tasks(lambda: MLPClassifier(64), [], "mlp")


def test_labels_grow_or_refuse():
    labels = Labels(most=3)
    assert labels.index(["a", "b", "a"]).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="unknown labels"):
        labels.index(["c"], grow=False)
    with pytest.raises(ValueError, match="at most 3"):
        labels.index(["c", "d"])
    assert labels.classes == ["a", "b"]
    assert split("t", np.arange(10.0)[:, None], np.arange(10)).y_train[0].startswith("t:")
