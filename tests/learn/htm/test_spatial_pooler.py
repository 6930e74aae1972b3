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


def test_initial_permanences_are_far_from_the_threshold():
    sp = SpatialPooler(200, 256, 10, seed=1)
    perm = sp.permanence[sp.potential]
    connected = perm >= sp.connected
    assert 0.45 < connected.mean() < 0.55  # half the potential synapses start connected
    assert perm[connected].max() > 0.95 and perm[connected].mean() > 0.55  # spread to 1
    assert perm[~connected].max() < sp.connected


def test_a_learned_input_keeps_its_code():
    enc = RandomDistributedScalarEncoder(1.0, n=400, w=21)
    sp = SpatialPooler(400, 512, 20, seed=2)
    x = enc.encode(7)
    first = sp.compute(x, learn=True)
    for v in range(200):  # other inputs, learned for a while
        sp.compute(enc.encode(100 + v % 50), learn=True)
    assert len(np.intersect1d(first, sp.compute(x, learn=False))) >= 18
