import json

from streamwise.bench.sequence import digits_sequences, run_sequence_bench


def test_digits_sequences_are_real_and_split():
    xtr, ytr, xte, yte = digits_sequences()
    assert xtr.shape[1:] == (2, 64) and len(ytr) + len(yte) == 1797
    assert set(ytr.tolist()) == set(range(10))
    assert float(xtr.min()) >= 0.0 and float(xtr.max()) <= 1.0


def test_sequence_bench_smoke(tmp_path):
    result = run_sequence_bench(tmp_path, epochs=1, stream_samples=1, progress=False)
    names = [r["model"] for r in result["rows"]]
    assert names[:5] == ["GRU", "LMU", "Aaren", "LIF", "causal conv"]
    data = json.loads((tmp_path / "sequence.json").read_text())
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["state_bytes"] > 0 for r in data["rows"])
    assert (tmp_path / "sequence.png").stat().st_size > 5_000
