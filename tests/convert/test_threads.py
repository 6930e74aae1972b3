"""One converted model stepped from two threads at once: each stream gets its own exact output.

``step`` and ``flush`` keep every per-call value in locals or the returned state, so streams of
different batch sizes and inputs can share one model across threads."""

from __future__ import annotations

import threading

import numpy as np
import torch

import streamwise as sw
from streamwise.convert import GraphStream
from streamwise.core.verify import random_chunks, stream_chunks
from tests.convert.architectures import architectures

ROUNDS = 3


def _run(s: GraphStream, x: torch.Tensor, sizes: list[int], barrier: threading.Barrier,
         out: dict[int, torch.Tensor], key: int, errors: list[BaseException]) -> None:
    try:
        stream = s.stream(x.shape[0], dtype=x.dtype)
        parts, pos = [], 0
        for n in sizes:
            barrier.wait()  # both threads step at the same moment, chunk after chunk
            parts.append(stream.push(x.narrow(s.time_axis, pos, n)))
            pos += n
        barrier.wait()
        parts.append(stream.close())
        out[key] = torch.cat(parts, s.out_time_axis)
    except BaseException as e:  # reported by the main thread
        errors.append(e)
        barrier.abort()


def test_one_converted_model_streams_from_two_threads_at_once():
    model, example, time_dim, _ = architectures()["res_gru"]
    s = sw.convert(model, example, time_dim)
    rng = np.random.default_rng(0)
    for _ in range(ROUNDS):
        # different batch sizes, lengths and inputs per thread
        xs = [torch.randn(1, 2, 150, dtype=torch.float64),
              torch.randn(3, 2, 173, dtype=torch.float64)]
        sizes = [random_chunks(x.shape[-1], rng, max_chunk=9) for x in xs]
        n = max(map(len, sizes))  # as many chunks each (the shorter ends with empty ones)
        sizes = [z + [0] * (n - len(z)) for z in sizes]
        barrier, out, errors = threading.Barrier(2), {}, []
        threads = [threading.Thread(target=_run, args=(s, x, z, barrier, out, i, errors))
                   for i, (x, z) in enumerate(zip(xs, sizes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        for i, (x, z) in enumerate(zip(xs, sizes)):
            alone, _ = stream_chunks(s, x, z)
            assert torch.equal(out[i], alone)
            with torch.no_grad():
                ref = model(x)
            assert out[i].shape == ref.shape
            assert float((out[i] - ref).abs().max()) <= 1e-10 * max(float(ref.abs().max()), 1)


def _attributes(s: GraphStream) -> dict[tuple[int, str], object]:
    """Every attribute of the converted model, its modules and its node ops, by owner and name."""
    owners: list[object] = [s, *s.modules()]
    for p in s.plans:
        if p.op is not None:
            owners += [p.op, *vars(p.op).values()]
    return {(id(o), k): v for o in owners if hasattr(o, "__dict__") for k, v in vars(o).items()}


def test_step_and_flush_write_no_attribute():
    """After a first stream (torch's own lazy caches filled), streaming again — other batch,
    every chunk size, flush — leaves every attribute the very object it was."""
    model, example, time_dim, _ = architectures()["res_gru"]
    s = sw.convert(model, example, time_dim)
    stream_chunks(s, example, [3, 0, 1, 7, 29])
    before = _attributes(s)
    x = torch.randn(3, 2, 61, dtype=torch.float64)
    stream_chunks(s, x, random_chunks(61, np.random.default_rng(1)))
    after = _attributes(s)
    assert after.keys() == before.keys()
    assert [k for k, v in after.items() if v is not before[k]] == []
