"""``streamwise bench continual``: the task-stream protocol on real data, three kinds of learner.

1. Class-incremental digits (scikit-learn's 8x8 digits, classes arriving two at a time, tested
   among every class seen so far): a fine-tuned MLP, the Discrete Key-Value Bottleneck (a frozen
   PCA encoder and keys fitted on the unlabeled training images), River's Hoeffding tree, and
   the MLP trained on all tasks at once (the i.i.d. reference no stream learner gets).
2. A NEVIS'22-style stream of eight real tasks (scikit-learn's digits, wine, breast cancer, iris;
   River's Phishing, Bananas, ImageSegments, Shuttle), each tested among its own classes, with
   forward transfer against the same learner trained from scratch on each task.

Writes ``continual.json`` and ``continual_digits.png`` / ``continual_tasks.png`` (accuracy
against compute, and what is left of each task).  Fitting DKVB's keys is the unsupervised stage
before the stream; its cost is reported apart from the training compute.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def _learners(n_features: int, unlabeled: np.ndarray, encoder: Any = None, keys: int = 256
              ) -> tuple[dict[str, Any], dict[str, float]]:
    from river import tree

    from streamwise.learn.dkvb import DKVB
    from streamwise.learn.evaluate import macs_of
    from streamwise.learn.mlp import MLPClassifier
    from streamwise.learn.river_protocol import FromRiver

    dkvb = DKVB(n_features, encoder, keys=keys, lr=10.0)
    t0 = time.perf_counter()
    macs = macs_of(lambda: dkvb.fit_keys(unlabeled))[1]
    setup = {"dkvb_fit_keys_seconds": time.perf_counter() - t0, "dkvb_fit_keys_macs": macs}
    return ({"fine-tuned MLP": lambda: MLPClassifier(n_features, epochs=10),
             "DKVB": lambda: copy.deepcopy(dkvb),
             "River Hoeffding tree": lambda: FromRiver(tree.HoeffdingTreeClassifier())},
            setup)


def run(out: Path, progress: bool = True, limit: int | None = None, keys: int = 256
         ) -> dict[str, Any]:
    """Both experiments; ``limit`` caps each data set's examples (a quick run), ``keys`` is
    DKVB's codebook size."""
    import torch
    from sklearn.datasets import load_digits

    from streamwise.learn.dkvb import pca_encoder
    from streamwise.learn.mlp import MLPClassifier
    from streamwise.learn.tasks import (
        accuracy,
        class_incremental,
        classification_tasks,
        plot_task_reports,
        run_tasks,
    )

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}

    X, y = load_digits(return_X_y=True)
    tasks = class_incremental("digits", X[:limit], y[:limit], per_task=2)
    unlabeled = np.concatenate([t.X_train for t in tasks])
    learners, setup = _learners(64, unlabeled, pca_encoder(unlabeled, 32), keys)
    reports = [run_tasks(make, tasks, name, task_aware=False, scratch=False, progress=progress)
               for name, make in learners.items()]
    joint = MLPClassifier(64, epochs=10)
    joint.learn_many(unlabeled, np.concatenate([t.y_train for t in tasks]))
    joint_acc = [accuracy(joint, t, None) for t in tasks]
    result["digits_class_incremental"] = {
        "reports": [r.to_dict() for r in reports], **setup,
        "joint_mlp_accuracy": float(np.mean(joint_acc)), "joint_mlp_per_task": joint_acc}
    plot_task_reports(reports, out / "continual_digits.png",
                      "class-incremental digits (2 new classes per task; tested on all seen)")

    tasks = classification_tasks(limit or 2000)
    unlabeled = np.concatenate([t.X_train for t in tasks])
    learners, setup = _learners(unlabeled.shape[1], unlabeled, keys=keys)
    reports = [run_tasks(make, tasks, name, task_aware=True, progress=progress)
               for name, make in learners.items()]
    result["task_stream"] = {"reports": [r.to_dict() for r in reports], **setup}
    plot_task_reports(reports, out / "continual_tasks.png",
                      "8 real tasks in a row (scikit-learn + River data), each tested among "
                      "its own classes")
    (out / "continual.json").write_text(json.dumps(result, indent=1))
    for part in ("digits_class_incremental", "task_stream"):
        for r in result[part]["reports"]:
            fwt = r["forward_transfer"]
            macs = f"{r['macs'][-1]:.3g}" if r["macs"] else "-"
            print(f"{part:>24} {r['learner']:>22}: average accuracy {r['average_accuracy']:.3f}"
                  f"  forgetting {r['forgetting']:.3f}"
                  + (f"  forward transfer {fwt:+.3f}" if fwt is not None else "")
                  + f"  training MACs {macs}  {r['seconds'][-1]:.1f} s")
    joint = result["digits_class_incremental"]["joint_mlp_accuracy"]
    print(f"joint MLP on all digits at once: {joint:.3f}")
    print(f"wrote {out / 'continual.json'}, continual_digits.png, continual_tasks.png")
    return result
