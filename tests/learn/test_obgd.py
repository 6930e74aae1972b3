import pytest
import torch

from streamwise.learn.obgd import AdaptiveObGD, ObGD


def _param(values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def test_obgd_small_step_is_plain_td_update():
    # ||z||_1 = 0.3, delta = 0.5: alpha*kappa*max(|delta|,1)*||z|| = 0.1*2*1*0.3 = 0.06 < 1
    w = _param([1.0, -2.0])
    opt = ObGD([w], lr=0.1, gamma=0.9, lamda=0.5, kappa=2.0)
    w.grad = torch.tensor([0.1, -0.2], dtype=torch.float64)
    used = opt.step(0.5)
    assert used == pytest.approx(0.1)
    torch.testing.assert_close(w.detach(), torch.tensor([1.0 + 0.1 * 0.5 * 0.1,
                                                         -2.0 + 0.1 * 0.5 * -0.2],
                                                        dtype=torch.float64))


def test_obgd_bounds_a_large_step():
    # alpha=1, kappa=2, |delta|=4, ||z||_1 = 3 -> M = 1*2*4*3 = 24 -> step size 1/24
    w = _param([0.0, 0.0, 0.0])
    opt = ObGD([w], lr=1.0, gamma=0.99, lamda=0.8, kappa=2.0)
    w.grad = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    used = opt.step(-4.0)
    assert used == pytest.approx(1 / 24)
    torch.testing.assert_close(w.detach(), -4.0 / 24 * torch.tensor([1.0, -1.0, 1.0],
                                                                    dtype=torch.float64))


def test_obgd_traces_decay_accumulate_and_reset():
    w = _param([0.0])
    opt = ObGD([w], lr=0.01, gamma=0.5, lamda=0.5, kappa=1.0)
    w.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step(0.0)
    w.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step(0.0)
    assert float(opt.state[w]["trace"]) == pytest.approx(0.25 * 1.0 + 2.0)
    w.grad = torch.tensor([1.0], dtype=torch.float64)
    opt.step(1.0, reset=True)  # the update uses the trace, then the episode's trace is gone
    assert float(w) == pytest.approx(0.01 * (0.25 * 2.25 + 1.0))
    assert float(opt.state[w]["trace"]) == 0.0


def test_obgd_state_dict_round_trip():
    w = _param([1.0, 2.0])
    opt = ObGD([w], lr=0.5)
    w.grad = torch.tensor([0.3, 0.1], dtype=torch.float64)
    opt.step(0.2)
    twin_w = _param([1.0, 2.0])
    twin = ObGD([twin_w], lr=0.5)
    twin.load_state_dict(opt.state_dict())
    torch.testing.assert_close(twin.state[twin_w]["trace"], opt.state[w]["trace"])
    assert twin.param_groups[0]["lr"] == 0.5


def test_adaptive_obgd_normalises_by_second_moment():
    w = _param([0.0, 0.0])
    opt = AdaptiveObGD([w], lr=0.1, kappa=2.0, beta2=0.999, eps=0.0)
    w.grad = torch.tensor([0.01, 10.0], dtype=torch.float64)
    opt.step(1.0)
    # first step: v_hat = (delta z)^2, so each coordinate moves by sign only: 0.1 / max(M, 1)
    # with M = 0.1 * 2 * 1 * ||z / |z| ||_1 = 0.4 < 1
    torch.testing.assert_close(w.detach(), torch.tensor([0.1, 0.1], dtype=torch.float64))


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"gamma": 1.5}, {"lamda": -0.1}, {"kappa": 0}])
def test_obgd_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match="ObGD needs"):
        ObGD([_param([0.0])], **kwargs)


def test_obgd_bounds_the_step_over_all_parameter_groups():
    a, b = _param([0.0]), _param([0.0])
    opt = ObGD([{"params": [a]}, {"params": [b]}], lr=1.0, kappa=1.0)
    a.grad = torch.tensor([1.0], dtype=torch.float64)
    b.grad = torch.tensor([1.0], dtype=torch.float64)
    assert opt.step(1.0) == pytest.approx(0.5)  # ||z||_1 = 2 over both groups
    assert float(a) == pytest.approx(0.5) and float(b) == pytest.approx(0.5)
