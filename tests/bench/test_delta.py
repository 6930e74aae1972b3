from streamwise.bench.delta import run_delta_bench, speech_features


def test_speech_features_are_normalised_log_bands():
    x = speech_features()
    assert x.shape[:2] == (1, 64) and x.shape[-1] > 600
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 0.01


def test_delta_bench_smoke(tmp_path):
    result = run_delta_bench(tmp_path, widths=(32,), thresholds=(0.0, 0.3), repeats=1)
    exact, sparse = result["rows"]
    assert exact["relative_rms_error"] < 1e-5  # threshold 0 = the dense stack
    assert sparse["transmitted"] < exact["transmitted"]
    assert (tmp_path / "delta.png").stat().st_size > 5_000
