import pytest

import streamwise as sw


@pytest.mark.parametrize(
    "factory, words",
    [
        (lambda: sw.GroupNorm(2, 4), "LayerNorm"),
        (lambda: sw.InstanceNorm1d(4), "whole sequence"),
        (lambda: sw.InstanceNorm2d(4), "BatchNorm2d"),
        (lambda: sw.AdaptiveAvgPool1d(1), "length"),
        (lambda: sw.AdaptiveMaxPool1d(1), "MaxPool1d"),
        (lambda: sw.GlobalAvgPool(), "end of the stream"),
    ],
)
def test_unstreamable_layers_explain_why_and_what_to_use(factory, words):
    with pytest.raises(sw.NotStreamableError, match="cannot stream exactly") as err:
        factory()
    assert words in str(err.value)
    assert isinstance(err.value, ValueError)
