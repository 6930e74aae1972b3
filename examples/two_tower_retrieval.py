"""Two-tower retrieval kept fresh from an interaction stream (2T-HGNN's setting).

The first MovieLens-100K ratings in time order: for each one, rank all 1682 items for the user
(items the user already rated left out), record recall@10 and NDCG@10 of the rated item, then
learn the batch.  Towers learned online, with and without a light user-item-genre graph
aggregation, against popularity.  On these first interactions popularity still leads; over
the whole stream the graph towers lead (the README's table).  Whole stream with the refit baseline:
``streamwise bench retrieval --out docs/learn``.
"""

import torch

from streamwise.bench.retrieval import side_features
from streamwise.learn.movielens import load_movielens
from streamwise.learn.two_tower import Popularity, TwoTower, prequential_retrieval

torch.set_num_threads(1)
ml = load_movielens()
n = 6000
users, items = ml.users_of_ratings[:n], ml.items_of_ratings[:n]
su, si = side_features(ml)
genres = ml.genre.astype(float)
models = {
    "popularity": Popularity(ml.n_users, ml.n_items),
    "online towers": TwoTower(su, si, genres=genres, lr=1e-2, replay=32),
    "graph towers": TwoTower(su, si, graph=True, genres=genres, lr=1e-2, replay=32),
}
for name, model in models.items():
    m = prequential_retrieval(model, users, items, batch=32, name=name).metrics()
    print(f"{name:>14}: recall@10 {m['recall@10']:.4f}, NDCG@10 {m['ndcg@10']:.4f} over "
          f"{n} interactions")
top = models["graph towers"].predict_many([int(users[-1])], k=5)[0]
print(f"top 5 items for user {int(users[-1])} now: {top.tolist()}")
