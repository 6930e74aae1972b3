import numpy as np
import pytest
import torch

from streamwise.learn.prompt_tpp import PromptTPP
from streamwise.learn.tpp import Events, NeuralTPP, tpp_metrics, train
from streamwise.learn.tpp_baselines import Hawkes, Poisson


def _hawkes_sample(n_seq=60, horizon=40.0, seed=0):
    """Two marks: mark 0 arrives at rate 0.3 and excites mark 1 (rate 0.05 + 1.5 e^{-2 dt})."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_seq):
        t, events = 0.0, []
        while True:  # thinning with a bound on the total intensity
            excite = sum(1.5 * 2 * np.exp(-2 * (t - s)) for s, k in events if k == 0)
            bound = 0.35 + excite + 3.0
            t += rng.exponential(1 / bound)
            if t > horizon:
                break
            excite = sum(1.5 * 2 * np.exp(-2 * (t - s)) for s, k in events if k == 0)
            lam = np.array([0.3, 0.05 + excite])
            if rng.random() < lam.sum() / bound:
                events.append((t, int(rng.random() < lam[1] / lam.sum())))
        if len(events) >= 2:
            seqs.append((np.array([e[0] for e in events]), np.array([e[1] for e in events])))
    return seqs


def test_intensity_integral_is_the_closed_form():
    torch.manual_seed(0)
    model = NeuralTPP(3, hidden=8, embed=4).double()
    ev = Events.pad([(np.array([0.0, 0.7, 2.0]), np.array([0, 2, 1]))], 3)
    torch.set_grad_enabled(False)
    try:
        h = model.histories(Events(ev.times, ev.marks, ev.mask))
        w = -torch.nn.functional.softplus(model.omega) - 1e-3
        ll, _ = model.log_likelihood(ev)
        _check(model, ev, h, w, ll)
    finally:
        torch.set_grad_enabled(True)


def _check(model, ev, h, w, ll):
    for i in range(2):  # event i + 1 given the history after event i
        d = float(ev.times[0, i + 1] - ev.times[0, i])
        grid = torch.linspace(0, d, 20001, dtype=torch.float64)
        mu = torch.nn.functional.softplus(model.raw_mu)
        lam = mu + torch.exp(model.head(h[0, i])[None] + w * grid[:, None])
        integral = torch.trapezoid(lam.sum(1), grid)
        k = int(ev.marks[0, i + 1])
        want = float(torch.log(lam[-1, k]) - integral)
        assert float(ll[0, i]) == pytest.approx(want, abs=1e-6)


def test_hawkes_and_neural_beat_poisson_on_hawkes_data():
    torch.set_num_threads(1)
    seqs = _hawkes_sample()
    train_seqs, test = seqs[:45], Events.pad(seqs[45:], 2)
    scores = {}
    for name, model in (("poisson", Poisson(2)), ("hawkes", Hawkes(2)),
                        ("neural", NeuralTPP(2, hidden=16, embed=4))):
        train(model, train_seqs, 2, list(model.parameters()), epochs=30, lr=0.05)
        scores[name] = tpp_metrics(model, test)
    assert scores["hawkes"]["log_likelihood"] > scores["poisson"]["log_likelihood"] + 0.1
    assert scores["neural"]["log_likelihood"] > scores["poisson"]["log_likelihood"] + 0.1
    assert scores["neural"]["mark_accuracy"] > scores["poisson"]["mark_accuracy"]


def test_prompt_tpp_trains_prompts_and_never_the_frozen_base():
    seqs = _hawkes_sample(20)
    base = NeuralTPP(2, hidden=8, embed=4)
    train(base, seqs, 2, list(base.parameters()), epochs=2)
    frozen = {k: v.clone() for k, v in base.rnn.state_dict().items()}
    model = PromptTPP(base, pool=4, length=2, top=2)
    prompts = model.prompts.detach().clone()
    ev = Events.pad(seqs, 2)
    before = tpp_metrics(model, ev)
    train(model, seqs, 2, model.trainable(), epochs=5, lr=0.05, extra_loss=model.matching_loss)
    assert all(torch.equal(v, base.rnn.state_dict()[k]) for k, v in frozen.items())
    assert not torch.equal(prompts, model.prompts)
    assert tpp_metrics(model, ev)["log_likelihood"] > before["log_likelihood"]
    # the prompts a sequence reads depend only on its first event
    idx, _ = model.select(model.query(ev))
    one = Events.pad([(seqs[0][0][:1], seqs[0][1][:1])], 2)
    assert torch.equal(model.select(model.query(one))[0][0], idx[0])


def test_bad_sequences_are_refused():
    for seqs, match in (([(np.array([1.0, 0.5]), np.array([0, 1]))], "non-decreasing"),
                        ([(np.array([0.0, np.nan]), np.array([0, 1]))], "finite"),
                        ([(np.array([0.0, 1.0]), np.array([0, 5]))], r"marks in \[0, 2\)"),
                        ([(np.array([0.0]), np.array([0, 1]))], "as many times as marks"),
                        ([], "at least one sequence")):
        with pytest.raises(ValueError, match=match):
            Events.pad(seqs, 2)
    with pytest.raises(ValueError, match="top <= pool"):
        PromptTPP(NeuralTPP(2), pool=2, top=3)
