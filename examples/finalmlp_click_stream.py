"""FinalMLP learned online, one pass, on the first MovieLens-100K ratings as a click stream.

Each record (user, item, demographics, genres, hour, weekday; label ``rating >= 4``) is
predicted before it is learned (``prequential``).  FinalMLP gates its two MLP streams on the
user's fields and the item's and fuses them bilinearly; ``PlainMLP`` is the same network with
one stream and no gates.  The whole stream with River's baselines:
``streamwise bench finalmlp --out docs/learn``.
"""

import torch

from streamwise.learn.evaluate import prequential
from streamwise.learn.finalmlp import FinalMLP, PlainMLP
from streamwise.learn.metrics import ROCAUC, LogLoss
from streamwise.learn.movielens import CLICK_FIELDS, ITEM_FIELDS, USER_FIELDS, load_movielens

torch.set_num_threads(1)
stream = list(load_movielens().click_stream(2500))
x, y = stream[0]
print(f"a record: {x} -> liked={y}")
models = {"FinalMLP": FinalMLP(CLICK_FIELDS, USER_FIELDS, ITEM_FIELDS, lr=1e-3, every=4),
          "PlainMLP": PlainMLP(CLICK_FIELDS, lr=1e-3, every=4)}
for name, model in models.items():
    report = prequential(model, stream, [ROCAUC(), LogLoss()], progress=False, name=name)
    f = report.final()
    print(f"{name:>9}: prequential ROC AUC {f['ROCAUC']:.4f}, log loss {f['LogLoss']:.4f} on "
          f"{len(stream)} records, {report.us_per_sample:,.0f} us/record")
