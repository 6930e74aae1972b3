"""Every zoo configuration meets its true outcome: it streams exactly in float64 (batch 2,
irregular chunkings drawn by hypothesis, sizes 0 and 1 included) or it is refused with a message
naming the reason that is true for that model.

``PENDING`` holds the configurations that stream in principle (or are refused for another
reason than the true one) but fail today, with today's error: their test asserts the correct
outcome and is a strict xfail, so the fix that makes one pass turns it red until it leaves the
list.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamwise.convert.convert import convert
from streamwise.convert.graph_stream import GraphStream
from streamwise.core.protocol import NotStreamableError
from tests.convert.zoo import ZOO
from tests.convert.zoo.models import Config, example
from tests.convert.zoo.packages import Missing
from tests.strategies import assert_streams_like_offline, chunkings

PENDING: dict[str, str] = {
    "SNAC encoder, local attention": "refused: LocalMHA folds time into windows of 8 frames "
                                     "(einops `b (w n) (h d) -> b h w n d`, attention within "
                                     "each window); it streams in principle, one window at a "
                                     "time, but the converter does not yet rebuild the region "
                                     "between a fold of time and its unfold as a block op",
}
_BY_NAME = {c.name: c for c in ZOO}
assert set(PENDING) <= set(_BY_NAME), set(PENDING) - set(_BY_NAME)
_converted: dict[str, GraphStream] = {}


def _converted_once(config: Config) -> GraphStream:
    """Built and converted in float64 once per configuration (hypothesis reruns the test)."""
    if config.name not in _converted:
        try:
            model = config.factory().double()
        except Missing as e:
            pytest.skip(str(e))
        _converted[config.name] = convert(model, example(config), -1, seed=0, **config.kwargs)
    return _converted[config.name]


def _streams_exactly(config: Config, data: st.DataObject) -> None:
    stream = _converted_once(config)
    x = example(config)
    assert x.shape[0] == 2
    sizes = data.draw(chunkings(x.shape[-1]), label="chunks")
    assert_streams_like_offline(stream, x, sizes)


def _refused_for_its_reason(config: Config) -> None:
    assert config.refused is not None
    try:
        model = config.factory().double()
    except Missing as e:
        pytest.skip(str(e))
    with pytest.raises(NotStreamableError, match=config.refused):
        convert(model, example(config), -1, seed=0, **config.kwargs)


def _ids(configs: list[Config]) -> list[str]:
    return [c.name for c in configs]


EXACT = [c for c in ZOO if c.refused is None and c.name not in PENDING]
REFUSED = [c for c in ZOO if c.refused is not None and c.name not in PENDING]
LATER = [pytest.param(_BY_NAME[n], marks=pytest.mark.xfail(strict=True, reason=why), id=n)
         for n, why in PENDING.items()]
FEW = settings(deadline=None, max_examples=3, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("config", EXACT, ids=_ids(EXACT))
@FEW
@given(data=st.data())
def test_streams_exactly(config: Config, data: st.DataObject) -> None:
    _streams_exactly(config, data)


@pytest.mark.parametrize("config", REFUSED, ids=_ids(REFUSED))
def test_refused_for_its_reason(config: Config) -> None:
    _refused_for_its_reason(config)


@pytest.mark.parametrize("config", LATER)
@FEW
@given(data=st.data())
def test_pending_meets_its_true_outcome(config: Config, data: st.DataObject) -> None:
    if config.refused is None:
        _streams_exactly(config, data)
    else:
        _refused_for_its_reason(config)


def test_the_zoo_covers_the_families_the_issue_names() -> None:
    families = {c.family for c in ZOO}
    assert {"vocoder", "codec", "enhancement", "separation", "tcn", "convnext"} <= families
    assert len(ZOO) >= 15
    assert len({c.name for c in ZOO}) == len(ZOO)


def test_factories_are_seeded() -> None:
    config = _BY_NAME["TCN, layer norm"]
    try:
        a, b = config.factory(), config.factory()
    except Missing as e:
        pytest.skip(str(e))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                 b.state_dict().values()))
