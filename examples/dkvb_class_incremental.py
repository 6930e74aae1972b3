"""Discrete Key-Value Bottleneck: classes arrive two at a time and the old ones survive.

scikit-learn's digits, cut into five tasks of two new classes.  A fine-tuned MLP forgets every
earlier task (its old logits are pushed down by each new one); DKVB's frozen PCA encoder and keys
(fitted on the unlabeled images) send each input to a few values, and only those learn.
"""

import numpy as np
import torch
from sklearn.datasets import load_digits

from streamwise.learn.dkvb import DKVB, pca_encoder
from streamwise.learn.mlp import MLPClassifier
from streamwise.learn.tasks import class_incremental, run_tasks

torch.set_num_threads(1)
X, y = load_digits(return_X_y=True)
tasks = class_incremental("digits", X, y, per_task=2)
unlabeled = np.concatenate([t.X_train for t in tasks])  # the images, no labels
encoder = pca_encoder(unlabeled, 32)
learners = {"fine-tuned MLP": lambda: MLPClassifier(64, epochs=10),
            "DKVB": lambda: DKVB(64, encoder, keys=256).fit_keys(unlabeled)}
for name, make in learners.items():
    r = run_tasks(make, tasks, name, task_aware=False, scratch=False, progress=False)
    left = " ".join(f"{a:.2f}" for a in r.accuracy[-1])
    print(f"{name:>15}: accuracy on all 10 classes {r.average_accuracy:.3f}, forgetting "
          f"{r.forgetting:.3f}; per task after the last: {left}")
