"""PromptTPP: a neural temporal point process learned period after period with a prompt pool.

MovieLens-100K rating times, one event sequence per user and period, each event marked by the
film's first genre.  The neural TPP (intensity ``mu_k + exp(a_k + w d)`` between events, in
closed form) is trained on the first period; for each later period its event encoder stays frozen
and only a small pool of prompts (keys + prefix vectors, selected per sequence by key match)
and the output head learn.  The log-likelihood on earlier periods, printed after each period,
shows how much is forgotten.  All models and periods: ``streamwise bench prompt-tpp``.
"""

import numpy as np
import torch

from streamwise.bench.prompt_tpp import period_sequences
from streamwise.learn.movielens import load_movielens
from streamwise.learn.prompt_tpp import PromptTPP
from streamwise.learn.tpp import Events, NeuralTPP, tpp_metrics, train

torch.set_num_threads(1)
ml = load_movielens()
n = 20_000
users, items, times = ml.users_of_ratings[:n], ml.items_of_ratings[:n], ml.timestamps[:n]
marks, k = ml.first_genre[items], len(ml.genres)
hours = (times - times.min()) / 3600.0
train_seqs, test_seqs = period_sequences(users, hours, marks, 3)
base = NeuralTPP(k, seed=0)
train(base, train_seqs[0], k, list(base.parameters()), epochs=3, seed=0)
model = PromptTPP(base)
for p in range(3):
    if p:
        train(model, train_seqs[p], k, model.trainable(), epochs=3,
              extra_loss=model.matching_loss, seed=p)
    scores = [tpp_metrics(model, Events.pad(test_seqs[q], k)) for q in range(p + 1)]
    seen = ", ".join(f"{s['log_likelihood']:+.2f}" for s in scores)
    print(f"after period {p}: log-likelihood per event on periods 0..{p}: {seen}; mark "
          f"accuracy now {np.mean([s['mark_accuracy'] for s in scores]):.3f}")
