"""Prequential (test-then-train) evaluation, River's models and ours through the same loop.

River's logistic regression on its bundled Phishing data: our evaluator gives the number
River's own ``progressive_val_score`` gives, and a streamwise model runs inside River's evaluator.
"""

from river import datasets, evaluate, linear_model, metrics, optim, preprocessing

from streamwise.learn import metrics as ours
from streamwise.learn.evaluate import prequential
from streamwise.learn.mlp import MLPClassifier
from streamwise.learn.river_protocol import to_river


def model():
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(optim.SGD(0.05))


stream = list(datasets.Phishing())
theirs = evaluate.progressive_val_score(stream, model(), metrics.Accuracy()).get()
report = prequential(model(), stream, [ours.Accuracy(), ours.ROCAUC()], progress=False)
print(f"River's progressive_val_score: accuracy {theirs:.4f}")
print(f"streamwise prequential:        accuracy {report.final()['Accuracy']:.4f}, exact AUC "
      f"{report.final()['ROCAUC']:.4f}, {report.us_per_sample:.0f} us per record")

names = list(stream[0][0])
rows = [({n: float(x[n]) for n in names}, y) for x, y in stream]
renamed = [({f"f{i}": x[n] for i, n in enumerate(names)}, y) for x, y in rows]
mlp = MLPClassifier(len(names), hidden=(16,), lr=0.01, epochs=1)
inside = evaluate.progressive_val_score(renamed, to_river(mlp), metrics.Accuracy()).get()
print(f"a streamwise MLP inside River's evaluator: accuracy {inside:.4f}")
