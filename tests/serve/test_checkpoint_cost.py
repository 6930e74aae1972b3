"""A checkpoint encodes each unacknowledged output once: its cost follows the new work, not the
backlog (issue 16, defect 4).  Counted in tensors encoded, not timed."""

from __future__ import annotations

import types

import torch
from torch import Tensor

from streamwise.core import codec
from streamwise.models.tiny_vad import tiny_vad
from streamwise.serve import sessions
from streamwise.serve.sessions import Session, new_token


def _tensors(tree: object) -> int:
    if isinstance(tree, Tensor):
        return 1
    if isinstance(tree, dict):
        return sum(_tensors(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(_tensors(v) for v in tree)
    return 0


def test_each_output_is_encoded_once_across_checkpoints(monkeypatch):
    encoded = []

    def counting(tree: object) -> bytes:
        encoded.append(_tensors(tree))
        return codec.encode(tree)

    monkeypatch.setattr(sessions, "codec", types.SimpleNamespace(encode=counting,
                                                                 decode=codec.decode))
    model = tiny_vad(hidden=8).eval()
    _, token_hash = new_token()
    s = Session(id="s", token_hash=token_hash, model="tiny_vad", client="c", budget_ms=100.0,
                stream=model.stream(1), channels=1)
    for seq in range(300):  # 300 unacknowledged outputs, a checkpoint after each
        s.outputs[seq] = torch.full((1, 1, 10), float(seq))
        s.next_seq = seq + 1
        blob = s.to_blob()
    assert sum(encoded) == 300, f"{sum(encoded)} output tensors encoded for 300 outputs"
    back = Session.from_blob(blob, {"tiny_vad": model})
    assert sorted(back.outputs) == list(range(300))
    assert all(float(back.outputs[k][0, 0, 0]) == k for k in back.outputs)
    s.ack(149)  # acknowledged outputs leave the checkpoint and its cache
    back = Session.from_blob(s.to_blob(), {"tiny_vad": model})
    assert sorted(back.outputs) == list(range(150, 300)) and len(s._encoded) == 150
