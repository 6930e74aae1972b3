"""The verb-set migration keeps every NAB detector's scores: per-record scores on two NAB files
equal those the detectors gave before it (``data/nab_reference.json.gz``, written by the
pre-migration code at commit 33b927d; ``htm`` rewritten, and ``htmNumenta``/``htmBacktrack``
added, when the HTM's pooler/temporal memory changed on purpose on branch htm-backtrack), and
``score_one`` is the score ``score_then_learn`` then gives, changing nothing."""

import gzip
import json
from pathlib import Path

import pytest

from streamwise.learn.series import load_series, nab_root
from streamwise.nab.run import DETECTORS, FileInfo
from streamwise.nab.scorer import probation_length

REFERENCE = Path(__file__).parent.parent / "data" / "nab_reference.json.gz"


def _root():
    root = nab_root()
    if not (root / "data").is_dir():
        pytest.skip(f"NAB data not found at {root} (the ../shared checkout beside the repo)")
    return root


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_nab_scores_are_what_they_were(name):
    root = _root()
    with gzip.open(REFERENCE, "rt") as f:
        reference = json.load(f)
    for file, want in reference.items():
        s = load_series(file, root)
        info = FileInfo(min(s.values), max(s.values), int(probation_length(len(s.values))))
        det = DETECTORS[name](info)
        scores, raws = [], []
        for i, (t, v) in enumerate(zip(s.timestamps, s.values)):
            record = {"timestamp": t, "value": v}
            peek = det.score_one(record) if i % 97 == 0 else None
            scores.append(det.score_then_learn(record))
            raws.append(det.last_raw)
            assert peek is None or peek == scores[-1], (file, i)
        assert scores == want["scores"][name], file
        assert raws == want["raw"][name], file
