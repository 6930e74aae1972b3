"""A picture of one NAB file: its values, the labelled windows, and a detector's scores."""

from __future__ import annotations

import json
from pathlib import Path

from streamwise.learn.series import load_series, nab_root
from streamwise.nab.corpus import read_scores, result_path, window_indices
from streamwise.nab.scorer import probation_length


def plot_file(results: Path, detectors: list[str], file: str, out: Path,
              root: Path | None = None) -> None:
    """Value (top) and each detector's anomaly score (below) with NAB's windows shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = root or nab_root()
    series = load_series(file, root)
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    windows = window_indices(series.timestamps, labels.get(file, []))
    fig, axes = plt.subplots(1 + len(detectors), 1, figsize=(11, 2.2 + 1.6 * len(detectors)),
                             sharex=True)
    ts = series.timestamps
    axes[0].plot(ts, series.values, color="black", lw=0.8)
    axes[0].set_ylabel("value")
    axes[0].set_title(f"{file}: labelled windows shaded, probation hatched")
    probation = int(probation_length(len(ts)))
    for ax, det in zip(axes[1:], detectors):
        ax.plot(ts, read_scores(result_path(results, det, file)), lw=0.8)
        ax.set_ylabel(det, fontsize=8)
        ax.set_ylim(-0.05, 1.05)
    for ax in axes:
        for a, b in windows:
            ax.axvspan(ts[a], ts[b], color="tab:red", alpha=0.15, lw=0)
        ax.axvspan(ts[0], ts[probation], fill=False, hatch="//", alpha=0.2, lw=0)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
