import numpy as np
import pytest

from streamwise.learn.htm.encoders import RandomDistributedScalarEncoder
from streamwise.learn.htm.spatial_pooler import SpatialPooler


def test_fixed_sparsity_determinism_and_similarity():
    enc = RandomDistributedScalarEncoder(1.0, n=400, w=21)
    sp_a, sp_b = SpatialPooler(400, 512, 20, seed=3), SpatialPooler(400, 512, 20, seed=3)
    x, near, far = enc.encode(10), enc.encode(11), enc.encode(300)
    out = sp_a.compute(x, learn=False)
    assert len(out) == 20 and np.array_equal(out, sp_b.compute(x, learn=False))
    assert len(np.intersect1d(out, sp_a.compute(near, learn=False))) >= 10
    assert len(np.intersect1d(out, sp_a.compute(far, learn=False))) <= 5


def test_learning_moves_winners_permanences_towards_the_input():
    sp = SpatialPooler(100, 64, 5, seed=0)
    x = np.arange(10)
    winners = sp.compute(x, learn=False)
    before = sp.permanence[winners][:, x].copy()
    sp.compute(x, learn=True)
    after = sp.permanence[winners][:, x]
    grew = sp.potential[winners][:, x]
    assert np.all(after[grew] >= before[grew]) and np.any(after[grew] > before[grew])
    assert np.all(sp.permanence[~sp.potential] == 0)


def test_bad_input_bits_are_refused():
    with pytest.raises(ValueError, match="input bits"):
        SpatialPooler(10, 16, 2).compute(np.array([3, 12]))
