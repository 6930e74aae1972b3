"""The task-stream protocol (NEVIS'22): a learner meets tasks one after another.

After training on task ``i`` the learner is tested on every task so far, filling row ``i`` of the
accuracy matrix ``R[i][j]`` (tested on task ``j``).  With ``T`` tasks:

- average accuracy = mean_j R[T-1][j], the accuracy at the end over everything met;
- forgetting (Chaudhry et al. 2018) = mean over j < T-1 of max_{i<T-1} R[i][j] - R[T-1][j];
- forward transfer = mean_j R[j][j] - S[j], where S[j] is the same kind of learner trained from
  scratch on task ``j`` alone: what the earlier tasks bought (or cost) on the new one, NEVIS'22's
  comparison against independent training;
- compute: the cumulative multiply-accumulates the learner spent training (PyTorch's FLOP counter
  around every ``learn_many``; learners without torch arithmetic report none) and wall seconds.

Learners speak the mini-batch verbs: ``learn_many(X, y)`` and ``predict_proba_many(X)``, whose
columns follow the learner's ``classes`` (labels in the order first learned).  Labels are made
unique across tasks (``"wine:1"``); ``task_aware=True`` tests each task among its own classes
(the learner is told the task, as NEVIS'22 does), ``False`` among every class seen so far (the
class-incremental setting).

``classification_tasks()`` builds a stream of real tasks from the data scikit-learn and River
ship: features standardised with the training split's statistics and zero-padded to a common
width, so one network can read them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from streamwise.learn.evaluate import macs_of


@dataclass
class Task:
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def classes(self) -> list[Any]:
        return sorted(set(self.y_train.tolist()) | set(self.y_test.tolist()))


def split(name: str, X: np.ndarray, y: np.ndarray, test: float = 0.3, limit: int | None = None,
          seed: int = 0) -> Task:
    """A seeded random train/test split with labels prefixed by the task name; ``limit`` caps
    the number of examples (a random subset)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))[:limit]
    X, labels = X[order], np.array([f"{name}:{v}" for v in y[order]], dtype=object)
    cut = int(round(len(X) * (1 - test)))
    return Task(name, X[:cut], labels[:cut], X[cut:], labels[cut:])


def standardise_and_pad(tasks: list[Task], width: int | None = None) -> list[Task]:
    """Each task's features standardised by its training split, zero-padded to ``width``."""
    width = width or max(t.X_train.shape[1] for t in tasks)
    out = []
    for t in tasks:
        mean, std = t.X_train.mean(0), t.X_train.std(0)
        std[std == 0] = 1.0

        def norm(a: np.ndarray, mean: np.ndarray = mean, std: np.ndarray = std) -> np.ndarray:
            z = (a - mean) / std
            return np.pad(z, ((0, 0), (0, width - z.shape[1])))

        out.append(Task(t.name, norm(t.X_train), t.y_train, norm(t.X_test), t.y_test))
    return out


def _river_arrays(dataset: Any, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for i, (x, y) in enumerate(dataset):
        if limit is not None and i >= limit:
            break
        xs.append([float(v) for v in x.values()])
        ys.append(y)
    return np.array(xs), np.array(ys)


def classification_tasks(limit: int = 2000, seed: int = 0) -> list[Task]:
    """scikit-learn's digits, wine, breast cancer and iris, then River's Phishing, Bananas,
    ImageSegments and Shuttle (each capped at ``limit`` examples), standardised and padded."""
    from river import datasets as rd
    from sklearn import datasets as sk

    tasks = []
    for n, load in (("digits", sk.load_digits), ("wine", sk.load_wine),
                    ("breast_cancer", sk.load_breast_cancer), ("iris", sk.load_iris)):
        X, y = load(return_X_y=True)
        tasks.append(split(n, X, y, limit=limit, seed=seed))
    for n, make, cap in (("phishing", rd.Phishing, None), ("bananas", rd.Bananas, None),
                         ("segment", rd.ImageSegments, None), ("shuttle", rd.Shuttle, 20000)):
        X, y = _river_arrays(make(), cap)
        tasks.append(split(n, X, y, limit=limit, seed=seed))
    return standardise_and_pad(tasks)


def class_incremental(name: str, X: np.ndarray, y: np.ndarray, per_task: int = 2,
                      seed: int = 0) -> list[Task]:
    """One data set cut into tasks of ``per_task`` new classes each (its classes in order)."""
    whole = split(name, X, y, seed=seed)
    mean, std = whole.X_train.mean(0), whole.X_train.std(0)
    std[std == 0] = 1.0
    classes = sorted(set(y.tolist()))
    out = []
    for k in range(0, len(classes), per_task):
        mine = {f"{name}:{c}" for c in classes[k:k + per_task]}
        tr = np.array([v in mine for v in whole.y_train])
        te = np.array([v in mine for v in whole.y_test])
        out.append(Task(f"{name} {'+'.join(str(c) for c in classes[k:k + per_task])}",
                        (whole.X_train[tr] - mean) / std, whole.y_train[tr],
                        (whole.X_test[te] - mean) / std, whole.y_test[te]))
    return out


def accuracy(learner: Any, task: Task, among: list[Any] | None) -> float:
    """Accuracy on ``task``'s test split, the prediction restricted to the labels ``among``
    (``None``: every label the learner knows)."""
    proba = np.asarray(learner.predict_proba_many(task.X_test), dtype=np.float64)
    known = list(learner.classes)
    cols = [known.index(c) for c in among if c in known] if among is not None else \
        list(range(len(known)))
    if not cols:
        return 0.0
    pred = np.array(known, dtype=object)[np.array(cols)[proba[:, cols].argmax(1)]]
    return float(np.mean(pred == task.y_test))


@dataclass
class TaskReport:
    learner: str
    tasks: list[str]
    accuracy: list[list[float]] = field(default_factory=list)  # R[i][j], j <= i
    macs: list[float] = field(default_factory=list)  # cumulative, after each task
    seconds: list[float] = field(default_factory=list)  # cumulative training time
    scratch: list[float] = field(default_factory=list)  # S[j]

    @property
    def average_accuracy(self) -> float:
        return float(np.mean(self.accuracy[-1]))

    @property
    def forgetting(self) -> float:
        last = len(self.accuracy) - 1
        if last < 1:
            return 0.0
        return float(np.mean([max(self.accuracy[i][j] for i in range(j, last))
                              - self.accuracy[last][j] for j in range(last)]))

    @property
    def forward_transfer(self) -> float | None:
        if not self.scratch:
            return None
        return float(np.mean([self.accuracy[j][j] - s for j, s in enumerate(self.scratch)]))

    def to_dict(self) -> dict[str, Any]:
        return {"learner": self.learner, "tasks": self.tasks, "accuracy": self.accuracy,
                "macs": self.macs if any(self.macs) else None, "seconds": self.seconds,
                "scratch": self.scratch, "average_accuracy": self.average_accuracy,
                "forgetting": self.forgetting, "forward_transfer": self.forward_transfer}


def run_tasks(make: Callable[[], Any], tasks: list[Task], name: str, task_aware: bool = True,
              scratch: bool = True, progress: bool = True) -> TaskReport:
    """``make()``'s learner through ``tasks`` in order; ``scratch`` also trains a fresh learner
    on each task alone (for the forward transfer)."""
    if not tasks:
        raise ValueError("expected at least one task")
    learner = make()
    report = TaskReport(name, [t.name for t in tasks])
    macs = seconds = 0.0
    for i, task in enumerate(tqdm(tasks, desc=f"tasks {name}", disable=not progress,
                                  leave=False)):
        t0 = time.perf_counter()
        macs += macs_of(lambda: learner.learn_many(task.X_train, task.y_train))[1]  # noqa: B023
        seconds += time.perf_counter() - t0
        report.macs.append(macs)
        report.seconds.append(seconds)
        report.accuracy.append([accuracy(learner, t, t.classes if task_aware else None)
                                for t in tasks[: i + 1]])
        if scratch:
            fresh = make()
            fresh.learn_many(task.X_train, task.y_train)
            report.scratch.append(accuracy(fresh, task, task.classes if task_aware else None))
    return report


def plot_task_reports(reports: list[TaskReport], path: Any, title: str) -> None:
    """Average accuracy over the tasks met so far against cumulative compute (MACs where
    counted, else seconds), and each learner's final accuracy per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    for k, r in enumerate(reports):
        avg = [float(np.mean(row)) for row in r.accuracy]
        axes[0].plot(r.seconds, avg, "o-", color=f"C{k}", label=r.learner)
        if any(r.macs):
            axes[1].plot(r.macs, avg, "o-", color=f"C{k}", label=r.learner)
        width = 0.8 / len(reports)
        axes[2].bar(np.arange(len(r.tasks)) + k * width, r.accuracy[-1], width,
                    color=f"C{k}", label=r.learner)
    axes[0].set(xscale="log", xlabel="cumulative training seconds",
                ylabel="average accuracy over tasks so far", title="accuracy vs wall time")
    axes[1].set(xscale="log", xlabel="cumulative training MACs (torch learners)",
                title="accuracy vs compute")
    axes[2].set_xticks(np.arange(len(reports[0].tasks)) + 0.4 - 0.4 / len(reports),
                       reports[0].tasks, rotation=30, ha="right", fontsize=8)
    axes[2].set(ylabel="accuracy after the last task", title="what is left of each task")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
