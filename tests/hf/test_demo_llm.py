"""The LLM demo's sampling helpers."""

import torch

from streamwise.hf.demo import penalise, sample


def test_repetition_penalty_lowers_recent_tokens_only():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    out = penalise(logits, [0, 1, 1], 2.0)
    assert out.tolist() == [1.0, -2.0, 0.5, 3.0]
    assert torch.equal(penalise(logits, [0], 1.0), logits)


def test_sample_is_greedy_at_zero_temperature_and_seeded_otherwise():
    logits = torch.tensor([0.1, 2.0, 0.3])
    g = torch.Generator().manual_seed(0)
    assert int(sample(logits, 0.0, 2, g)) == 1
    a = [int(sample(logits, 1.0, 3, torch.Generator().manual_seed(3))) for _ in range(3)]
    assert len(set(a)) == 1 and 0 <= a[0] < 3
