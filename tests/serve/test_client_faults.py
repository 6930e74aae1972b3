"""The client under server faults: a ``send`` that fails because the server died is neither
duplicated nor lost once the client resumes (issue 16, defect 1)."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest

from streamwise.serve.client import StreamClient
from tests.serve.conftest import ServerProcess
from tests.serve.test_durability import offline


async def _send_during_outage(server: ServerProcess, wait_for_close: bool) -> None:
    x = np.random.default_rng(5).standard_normal((1, 320 * 14)).astype(np.float32) * 0.3
    chunks = [x[:, a : a + 320] for a in range(0, x.shape[1], 320)]
    c = StreamClient(server.url.replace("http", "ws"))
    await c.open("tiny_vad")
    got: dict[int, list[np.ndarray]] = {}
    for i in range(8):  # outputs 0-7 arrive; the application consumes and acknowledges 0-4
        await c.send(chunks[i])
        seq, y = await c.recv()
        if seq <= 4:
            got.setdefault(seq, []).append(y)
    await c.ack(4)
    await asyncio.sleep(0.2)  # let the ack land
    server.kill()
    if wait_for_close:  # the client has seen the socket close: the write itself raises
        await asyncio.wait_for(c.ws.wait_closed(), 10)
        with pytest.raises(Exception):  # noqa: B017 - websockets' ConnectionClosed* family
            await c.send(chunks[8])
    else:  # the write may reach the dying socket's buffer: sent, but never answered
        with contextlib.suppress(Exception):
            await c.send(chunks[8])
    assert c.next_seq == 9, "chunk 8 has its seq whether or not the write got through"
    server.start()
    outs = await c.resume()  # 5-7 (unacknowledged) and 8 (re-sent), once each
    assert [s for s, _ in outs] == [5, 6, 7, 8]
    for seq, y in outs:
        got.setdefault(seq, []).append(y)
    assert c.next_seq == 9
    while c.next_seq < len(chunks):  # the application goes on from next_seq
        await c.send(chunks[c.next_seq])
        seq, y = await c.recv()
        got.setdefault(seq, []).append(y)
    _, tail = await c.close()
    assert sorted(got) == list(range(len(chunks))), "no output lost"
    assert all(len(v) == 1 for v in got.values()), \
        f"duplicated outputs: {[s for s, v in got.items() if len(v) > 1]}"
    full = np.concatenate([got[i][0] for i in range(len(chunks))] + [tail], -1)
    np.testing.assert_allclose(full, offline("tiny_vad", x), atol=1e-5)


@pytest.mark.parametrize("wait_for_close", [True, False], ids=["send_raises", "send_in_flight"])
def test_send_during_an_outage_is_neither_duplicated_nor_lost(tmp_path, wait_for_close):
    server = ServerProcess(f"sqlite:{tmp_path / 'sessions.db'}").start()
    try:
        asyncio.run(_send_during_outage(server, wait_for_close))
    finally:
        server.stop()
