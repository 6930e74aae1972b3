"""Stream2LLM contexts: LCP reuse is exact, the KV budget holds, preemption changes no token."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.live.contexts import Context, Scheduler
from tests.hf.conftest import tiny

# Exactness is checked in float32 to 1e-5: in float64 a chunked forward differs from a whole one
# by ~3e-8, because transformers computes the RoPE cos/sin tables in float32 and their last bit
# depends on the tensor's length.  The scheduler runs in float64 (greedy ties cannot flip).
MODEL32 = tiny("llama")
MODEL = tiny("llama").double()


def _ids(n: int, seed: int) -> list[int]:
    return torch.randint(0, 100, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


def _lcp(a: list[int], b: list[int]) -> int:
    """The common prefix by a second route (the module uses ``attention.common_prefix``)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _reference(ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return MODEL32(torch.tensor([ids])).logits[0]


def _update_and_check(ctx: Context, new: list[int], chunk: int) -> int:
    """Update, prefill the rest in chunks, compare with a from-scratch forward of ``new``."""
    expect = min(_lcp(new, ctx.ids[: ctx.cached]), len(new) - 1)
    keep = ctx.update(new)
    assert keep == expect == ctx.cached and ctx.pending == len(new) - keep
    parts = []
    while ctx.pending:
        parts.append(ctx.compute(MODEL32, min(chunk, ctx.pending)))
    got = torch.cat(parts)
    ref = _reference(new)[keep:]
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-5 * max(1.0, ref.abs().max().item())
    return keep


@pytest.mark.parametrize("case", ["append", "middle_edit", "full_replacement", "empty_lcp",
                                  "identical", "truncate"])
def test_update_reuses_the_common_prefix_and_matches_a_fresh_forward(case):
    old = _ids(40, 1)
    ctx = Context(MODEL32.config)
    assert _update_and_check(ctx, old, 64) == 0
    new = {"append": old + _ids(7, 2),
           "middle_edit": old[:15] + [(old[15] + 1) % 100] + _ids(3, 3) + old[16:],
           "full_replacement": _ids(33, 4),
           "empty_lcp": [(old[0] + 1) % 100] + old[1:],
           "identical": list(old),
           "truncate": old[:25]}[case]
    assert new[0] != old[0] or case not in ("full_replacement", "empty_lcp")
    keep = _update_and_check(ctx, new, 5)
    assert keep == {"append": 40, "middle_edit": 15, "full_replacement": 0, "empty_lcp": 0,
                    "identical": 39, "truncate": 24}[case]


edits = st.tuples(st.sampled_from(["append", "edit", "truncate", "replace"]),
                  st.integers(0, 10_000), st.integers(1, 8))


@settings(max_examples=20, deadline=None)
@given(start=st.integers(1, 20), ops=st.lists(edits, min_size=1, max_size=5),
       chunk=st.integers(1, 9), seed=st.integers(0, 1000))
def test_random_appends_and_edits_stay_exact(start, ops, chunk, seed):
    ctx = Context(MODEL32.config)
    ids = _ids(start, seed)
    _update_and_check(ctx, ids, chunk)
    for i, (op, pos, n) in enumerate(ops):
        fresh = _ids(n, seed + i + 1)
        p = pos % len(ids)
        if op == "append":
            ids = ids + fresh
        elif op == "edit":
            ids = ids[:p] + fresh + ids[p + 1:]
        elif op == "truncate":
            ids = ids[: max(1, p)]
        else:
            ids = fresh
        ids = ids[:80]
        _update_and_check(ctx, ids, chunk)


def _workload(sched: Scheduler, sessions: int = 3, updates: int = 3, gap: float = 1.0) -> None:
    """Sessions whose transcripts grow, with a correction of the last words now and then; a
    request every ``gap`` seconds, round robin over the sessions."""
    ctxs = {f"s{i}": _ids(12 + 5 * i, 10 + i) for i in range(sessions)}
    for s in ctxs:
        sched.open(s)
    t = 0.0
    for u in range(updates):
        for j, s in enumerate(ctxs):
            if (u + j) % 3 == 2:
                ctxs[s] = ctxs[s][:-3] + _ids(3, 100 + u * 10 + j)
            else:
                ctxs[s] = ctxs[s] + _ids(6, 200 + u * 10 + j)
            t += gap
            sched.submit(s, ctxs[s], k=4, arrival=t)


def _ticks(step: float = 0.01):
    """A fake timer: every model call lasts ``step`` seconds (it is read twice per call)."""
    n = [0]

    def now() -> float:
        n[0] += 1
        return (n[0] // 2) * step
    return now


def _run(budget: int, reuse: bool = True, chunk: int = 8, gap: float = 1.0) -> Scheduler:
    sched = Scheduler(MODEL, budget=budget, chunk=chunk, reuse=reuse, timer=_ticks())
    _workload(sched, gap=gap)
    peak = [0]

    def check(req):
        used = sched.used()
        assert used <= budget
        peak[0] = max(peak[0], used)

    sched.run(check)
    assert all(r.done is not None and len(r.generated) == r.k for r in sched.requests)
    sched.peak = peak[0]  # type: ignore[attr-defined]
    return sched


def test_budget_holds_and_preemption_changes_no_token():
    for gap in (1.0, 0.0):                        # one request at a time, or all at once
        free = _run(budget=10_000, gap=gap)
        tight = _run(budget=45, gap=gap)
        assert free.preemptions == 0 and tight.preemptions > 0
        assert free.peak > 45 and tight.peak <= 45  # type: ignore[attr-defined]
        assert [r.generated for r in tight.requests] == [r.generated for r in free.requests]
    free, tight = _run(budget=10_000), _run(budget=45)
    assert [r.generated for r in tight.requests] == [r.generated for r in free.requests]
    assert sum(r.prefilled for r in tight.requests) > sum(r.prefilled for r in free.requests)


def test_reuse_prefills_less_than_full_recompute_with_the_same_tokens():
    reuse, full = _run(budget=10_000), _run(budget=10_000, reuse=False)
    assert [r.generated for r in reuse.requests] == [r.generated for r in full.requests]
    assert sum(r.reused for r in full.requests) == 0 < sum(r.reused for r in reuse.requests)
    assert all(r.prefilled == len(r.ids) + r.k - 1 for r in full.requests)
    assert sum(r.prefilled for r in reuse.requests) < sum(r.prefilled for r in full.requests)
    assert full.used() == 0 < reuse.used()  # recompute frees a finished request's KV


def test_times_are_ordered_and_generation_is_greedy():
    sched = _run(budget=10_000, chunk=8)
    for r in sched.requests:
        assert r.first_token is not None and r.done is not None
        assert r.arrival <= r.first_token < r.done
    first = sched.requests[0]                     # 18 ids in chunks of 8: 3 calls, then 3 more
    assert first.ttft == pytest.approx(0.03) and first.done - first.arrival == pytest.approx(0.06)
    for r in sched.requests:
        ids = list(r.ids)
        for token in r.generated:
            with torch.no_grad():
                assert token == int(MODEL(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)


def test_bad_input_raises_and_leaves_state_unchanged():
    with pytest.raises(ValueError, match="budget expected"):
        Scheduler(MODEL, budget=1)
    with pytest.raises(ValueError, match="chunk expected"):
        Scheduler(MODEL, budget=100, chunk=0)
    sched = Scheduler(MODEL, budget=30)
    sched.open("a")
    sched.submit("a", [1, 2, 3], k=2, arrival=1.0)
    before = ([list(q) for q in sched.queues.values()], list(sched.requests))
    bad = [(dict(session="b", ids=[1], k=1), "unknown 'b'"),
           (dict(session="a", ids=[], k=1), "non-empty"),
           (dict(session="a", ids=[1, 100], k=1), r"token ids in \[0, 100\)"),
           (dict(session="a", ids=[1], k=0), "k >= 1"),
           (dict(session="a", ids=list(range(29)), k=2), "within the KV budget 30"),
           (dict(session="a", ids=[1], k=1, arrival=0.5), "arrivals in order")]
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            sched.submit(**kwargs)  # type: ignore[arg-type]
        assert ([list(q) for q in sched.queues.values()], list(sched.requests)) == before
    with pytest.raises(ValueError, match="already open"):
        sched.open("a")
    ctx = Context(MODEL.config)
    ctx.update([4, 5, 6])
    ctx.compute(MODEL, 3)
    cache = ctx.cache
    with pytest.raises(ValueError, match="non-empty"):
        ctx.update([])
    assert ctx.ids == [4, 5, 6] and ctx.cache is cache and ctx.cached == 3
    with pytest.raises(ValueError, match="pending"):
        ctx.compute(MODEL, 1)
    assert ctx.cached == 3
