"""PrefixSession: a rewritten context reuses the common prefix's KV; logits == full recompute."""

import pytest
import torch

from streamwise.hf import PrefixSession
from tests.hf.conftest import tiny


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_updates_equal_full_recompute(arch):
    model = tiny(arch)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 100, (1, 30), generator=g)
    s = PrefixSession(model)
    s.update(ids)
    assert (s.reused, s.computed) == (0, 30)
    edited = torch.cat([ids[:, :21], torch.randint(0, 100, (1, 12), generator=g)], 1)
    logits = s.update(edited)
    assert (s.reused, s.computed) == (21, 12)
    with torch.no_grad():
        full = model(input_ids=edited).logits[:, 21:]
    torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)
    appended = torch.cat([edited, torch.randint(0, 100, (1, 5), generator=g)], 1)
    logits = s.update(appended)
    assert (s.reused, s.computed) == (33, 5)
    with torch.no_grad():
        torch.testing.assert_close(logits, model(input_ids=appended).logits[:, 33:],
                                   rtol=1e-5, atol=1e-5)


def test_bad_ids_are_refused():
    s = PrefixSession(tiny("llama"))
    with pytest.raises(ValueError, match="token ids"):
        s.update(torch.randn(1, 4))
    with pytest.raises(ValueError, match="at least one"):
        s.update(torch.zeros(1, 0, dtype=torch.long))


def test_a_context_changed_at_its_first_token_is_recomputed_whole():
    model = tiny("llama")
    g = torch.Generator().manual_seed(1)
    s = PrefixSession(model)
    s.update(torch.randint(0, 100, (1, 21), generator=g))
    new = torch.randint(0, 100, (1, 12), generator=g)
    new[0, 0] = (s.prefix.held[0, 0] + 1) % 100
    logits = s.update(new)
    assert (s.reused, s.computed) == (0, 12) and s.cache.get_seq_length() == 12
    with torch.no_grad():
        torch.testing.assert_close(logits, model(input_ids=new).logits, rtol=1e-5, atol=1e-5)
