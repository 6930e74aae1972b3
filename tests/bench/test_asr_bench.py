"""``streamwise bench asr`` end to end on a few streams: every decoder and latency reported,
JSON + PNG written, and the measures keep the properties they must have."""

import json

from streamwise.bench.asr import CHUNKS, run


def test_asr_bench_small(tmp_path):
    res = run(tmp_path, n_streams=2, n_utts=8, exported=False)  # the export: test_asr_export
    saved = json.loads((tmp_path / "asr.json").read_text())
    assert saved == json.loads(json.dumps(res))
    assert (tmp_path / "asr.png").stat().st_size > 10_000
    names = {f"greedy {'full' if c is None else f'{c * 40} ms'}" for c in CHUNKS}
    assert names | {"greedy 160 ms + peek tail", "agreement (160 ms updates)", "offline"} == \
        set(res["decoders"])
    for name, d in res["decoders"].items():
        assert 0 <= d["wer"] <= 1.5 and 0 <= d["perception_wer"] <= 1.5 and d["rtf"] > 0, name
        assert 0 <= d["flicker"] <= 1
        if name in names:  # committed on arrival, never revised: nothing shown is retracted
            assert d["flicker"] == 0
    # full context and offline emit nothing before the stream ends: lateness costs them most
    full, fast = res["decoders"]["greedy full"], res["decoders"]["greedy 80 ms"]
    assert full["commit_latency_median_s"] > fast["commit_latency_median_s"]
    assert full["perception_wer"] > full["wer"]
    assert set(res["utterance_wer"]) == set(res["alsa_words_right"]) == {
        n.removeprefix("greedy ") for n in names}
