"""The scheduler on its own: earliest deadline first, and the capped batching wait."""

import threading
import time

import torch

import streamwise as sw
from streamwise.core.batch import StateBatcher
from streamwise.serve.scheduler import Scheduler
from streamwise.serve.sessions import Pending, Session
from streamwise.serve.store import MemoryStore


class Recording(StateBatcher):
    """A batcher that notes which sessions each step served, and when."""

    def __init__(self, model):
        super().__init__(model)
        self.steps: list[tuple[float, list[int]]] = []

    def step(self, streams, chunks):
        self.steps.append((time.monotonic(), [id(s) for s in streams]))
        return super().step(streams, chunks)


def _setup(**kw):
    torch.manual_seed(0)
    model = sw.Conv1d(1, 1, 3, padding="causal").double().eval()
    batcher = Recording(model)
    return model, batcher, Scheduler({"m": batcher}, MemoryStore(), **kw)


def _session(model, name):
    return Session(id=name, token_hash="-", model="m", client="c", budget_ms=1000.0,
                   stream=model.stream(1, dtype=torch.float64), channels=1)


def _submit(sched, s, deadline_in, done):
    now = time.monotonic()
    sched.submit(s, Pending(seq=s.next_submit, chunk=torch.randn(1, 1, 4, dtype=torch.float64),
                            deadline=now + deadline_in, arrived=now, done=done))


def _submit_together(sched, sessions, deadlines, why="a chunk was never answered"):
    """One chunk per session, all queued before the compute thread looks (the lock is held),
    then wait until every one is answered."""
    left = threading.Semaphore(0)
    with sched.lock:
        for s, d in zip(sessions, deadlines):
            _submit(sched, s, d, lambda r: left.release())
    for _ in sessions:
        assert left.acquire(timeout=30), why


def test_chunks_are_stepped_earliest_deadline_first():
    model, batcher, sched = _setup(max_batch=1)  # one session per step: the order shows
    try:
        sessions = [_session(model, f"s{k}") for k in range(4)]
        _submit_together(sched, sessions, (3.0, 1.0, 4.0, 2.0))  # seen all at once
        order = [ids[0] for _, ids in batcher.steps]
        want = [id(sessions[k].stream) for k in (1, 3, 0, 2)]  # deadlines 1, 2, 3, 4
        assert order == want
    finally:
        sched.stop()


def test_the_batching_wait_is_capped_by_batch_wait_and_by_a_quarter_of_the_budget():
    # (batch_wait_s, deadline, the cap that applies): 0.3 s; a quarter of the 2 s left
    for wait_s, deadline_in, cap in ((0.3, 60.0, 0.3), (60.0, 2.0, 0.5)):
        model, batcher, sched = _setup(max_batch=8, batch_wait_s=wait_s)
        try:
            done = threading.Event()
            start = time.monotonic()
            _submit(sched, _session(model, "a"), deadline_in, lambda r, d=done: d.set())
            assert done.wait(30), "the lone chunk was never stepped: the wait is not capped"
            waited = batcher.steps[0][0] - start
            # it waited for company (the cap, less scheduling slack), then met its deadline
            assert cap * 0.9 <= waited < min(deadline_in, 30), (wait_s, deadline_in, waited)
        finally:
            sched.stop()


def test_no_wait_once_max_batch_sessions_wait_and_they_share_one_step():
    model, batcher, sched = _setup(max_batch=3, batch_wait_s=60.0)
    try:
        sessions = [_session(model, f"s{k}") for k in range(3)]
        _submit_together(sched, sessions, [60.0] * 3, "a full batch still waited for more")
        assert len(batcher.steps) == 1 and len(batcher.steps[0][1]) == 3
    finally:
        sched.stop()


def test_late_arrivals_join_the_waiting_batch():
    model, batcher, sched = _setup(max_batch=8, batch_wait_s=1.0)
    try:
        left = threading.Semaphore(0)
        a, b = _session(model, "a"), _session(model, "b")
        _submit(sched, a, 60.0, lambda r: left.release())
        time.sleep(0.05)  # b arrives while the scheduler waits for company
        _submit(sched, b, 60.0, lambda r: left.release())
        assert left.acquire(timeout=30) and left.acquire(timeout=30)
        assert [len(ids) for _, ids in batcher.steps] == [2]
    finally:
        sched.stop()
