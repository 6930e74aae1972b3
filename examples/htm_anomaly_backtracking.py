"""HTM anomaly detection with the backtracking temporal memory and Numenta's post-processing.

``numenta_scoring(HTMDetector(low, high, tm="backtracking"), probation)`` is the detector that
scores 70.3-73.1 on the whole Numenta Anomaly Benchmark (README; ``scripts/nab_htm.py``).  Here
it streams one NAB file (a daily pattern that jumps up once), one record at a time, and prints
its highest scores after the probation period against the labelled anomaly window.
"""

from streamwise.learn.anomaly.postprocess import numenta_scoring
from streamwise.learn.htm.detector import HTMDetector
from streamwise.learn.series import load_series
from streamwise.nab.scorer import probation_length

series = load_series("artificialWithAnomaly/art_daily_jumpsup.csv")
values, times = series.values, series.timestamps
probation = int(probation_length(len(values)))  # NAB does not score these first records
detector = numenta_scoring(HTMDetector(min(values), max(values), tm="backtracking"), probation)
scores = [detector.score_then_learn({"timestamp": t, "value": v}) for t, v in zip(times, values)]
print(f"{len(values)} records; labelled anomaly window: 2014-04-10 16:15 to 2014-04-12 01:45")
best = sorted(range(probation, len(scores)), key=scores.__getitem__, reverse=True)[:3]
for i in sorted(best):
    print(f"  score {scores[i]:.4f} at {times[i]:%Y-%m-%d %H:%M} (value {values[i]:.1f})")
