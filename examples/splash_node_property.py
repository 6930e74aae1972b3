"""SPLASH: node property prediction on an edge stream under distribution shift.

MovieLens-100K's ratings as user-item edges in time order; each day, every user active that day
gets a predicted genre distribution for their next day's ratings (TGB ``tgbn-genre``'s task
shape), scored by NDCG@10 before anything learns from it.  SPLASH selects among candidate node
feature groups on the first days, then predicts from the chosen ones; persistence and moving
averages are TGB's baselines.  Whole stream: ``streamwise bench splash --out docs/learn``.
"""

import numpy as np
import torch

from streamwise.learn.movielens import load_movielens
from streamwise.learn.splash import run_stream

torch.set_num_threads(1)
ml = load_movielens()
n = 30_000
t = ml.timestamps[:n]
days = (t - t[0]) // 86_400
res = run_stream(ml.users_of_ratings[:n], ml.items_of_ratings[:n], days, ml.genre.astype(float),
                 ml.n_users, ml.n_items, select_frac=0.3, epochs=5)
print(f"{res['n_periods']} days; scored from day {res['first_scored_period']}; selected "
      f"feature groups: {res['selected'] or '(none: the prior alone)'}")
for name, v in res["ndcg"].items():
    print(f"{name:>26}: NDCG@10 {float(np.nanmean(v)):.4f} over {len(v)} user-days")
