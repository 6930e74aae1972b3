"""StreamBP: gradients chunk by chunk along the sequence equal full backpropagation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from streamwise.train import stream_backward
from tests.strategies import chunkings

VOCAB = 40


def _llama(dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128)
    return LlamaForCausalLM(cfg).to(dtype).eval()


def _gpt2(dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=128)
    return GPT2LMHeadModel(cfg).to(dtype).eval()


MODELS = {"llama": _llama, "gpt2": _gpt2}


def _full(model, tokens, labels=None):
    """Plain backprop of the same loss, computed in the model's dtype."""
    labels = tokens if labels is None else labels
    model.zero_grad()
    logits = model(input_ids=tokens).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB),
                                             labels[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def _streamed(model, tokens, chunk, labels=None):
    model.zero_grad()
    loss = stream_backward(model, tokens, chunk, labels)
    return loss, {k: p.grad.clone() for k, p in model.named_parameters()}


def _assert_close(a, b, tol):
    (la, ga), (lb, gb) = a, b
    assert abs(float(la) - float(lb)) <= tol * max(1.0, abs(float(lb)))
    for k in gb:
        scale = max(float(gb[k].abs().max()), 1e-3)
        err = float((ga[k] - gb[k]).abs().max())
        assert err <= tol * scale, f"{k}: max error {err:.3e} > {tol} x {scale:.3g}"


@pytest.mark.parametrize("name", MODELS)
@settings(max_examples=12, deadline=None)
@given(data=st.data(), batch=st.integers(1, 3), length=st.integers(2, 40))
def test_gradients_equal_full_backprop_for_any_chunking_float64(name, data, batch, length):
    model = MODELS[name]()
    tokens = torch.randint(0, VOCAB, (batch, length),
                           generator=torch.Generator().manual_seed(length))
    sizes = data.draw(chunkings(length))
    _assert_close(_streamed(model, tokens, sizes), _full(model, tokens), 1e-10)


@pytest.mark.parametrize("name", MODELS)
def test_float32_to_1e5_and_fixed_chunks(name):
    model = MODELS[name](torch.float32)
    tokens = torch.randint(0, VOCAB, (2, 96), generator=torch.Generator().manual_seed(1))
    _assert_close(_streamed(model, tokens, 7), _full(model, tokens), 1e-5)


def test_ignored_labels_and_the_transformers_loss():
    model = _llama()
    tokens = torch.randint(0, VOCAB, (2, 30), generator=torch.Generator().manual_seed(2))
    labels = tokens.clone()
    labels[:, :10] = -100  # a prompt that is not scored
    _assert_close(_streamed(model, tokens, 4, labels), _full(model, tokens, labels), 1e-10)
    hf = model(input_ids=tokens, labels=labels).loss  # transformers' own loss (float32 inside)
    assert abs(float(hf.detach()) - float(stream_backward(model, tokens, 4, labels))) < 1e-5


def test_gradients_accumulate_like_backward():
    model = _gpt2()
    tokens = torch.randint(0, VOCAB, (1, 20), generator=torch.Generator().manual_seed(3))
    _, once = _streamed(model, tokens, 6)
    stream_backward(model, tokens, 6)  # on top of the grads left by _streamed
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 2 * once[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("bad, message", [
    (dict(tokens=torch.zeros(5, dtype=torch.long)), "(batch, time) long tensor"),
    (dict(tokens=torch.zeros(1, 5)), "(batch, time) long tensor"),
    (dict(tokens=torch.zeros(1, 1, dtype=torch.long)), "at least 2 tokens"),
    (dict(tokens=torch.full((1, 5), VOCAB)), "token ids in [0, 40)"),
    (dict(chunk=0), "integer >= 1"),
    (dict(chunk=[2, 2]), "summing to the 5 tokens"),
    (dict(chunk=[2, -1, 4]), "sizes >= 0"),
    (dict(labels=torch.zeros(1, 4, dtype=torch.long)), "of the tokens' shape (1, 5)"),
    (dict(labels=torch.full((1, 5), -100)), "nothing to learn"),
    (dict(labels=torch.full((1, 5), 99)), "labels in [0, 40)"),
])
def test_bad_input_is_refused_and_no_gradient_changes(bad, message):
    model = _llama()
    model.zero_grad()
    args = dict(tokens=torch.zeros(1, 5, dtype=torch.long), chunk=2, labels=None) | bad
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        stream_backward(model, **args)
    assert all(p.grad is None for p in model.parameters())


def test_dropout_on_is_refused():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2))
    model.train()
    with pytest.raises(ValueError, match="dropout is on"):
        stream_backward(model, torch.zeros(1, 6, dtype=torch.long), 2)


def test_sliding_window_caches_are_refused():
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                        sliding_window=4)
    model = MistralForCausalLM(cfg).eval()
    with pytest.raises(ValueError, match="plain key/value caches"):
        stream_backward(model, torch.zeros(1, 10, dtype=torch.long), 3)
