import gymnasium as gym
import numpy as np
import pytest
import torch

from streamwise.learn.streamx.agents import StreamAC, StreamQ, StreamTD, TraceLearner
from streamwise.learn.streamx.nets import mlp, sparse_init
from streamwise.learn.streamx.train import make_agent, make_env, train


def test_sparse_init_zeroes_ninety_percent_of_each_units_inputs():
    layer = torch.nn.Linear(50, 8)
    sparse_init(layer, 0.9, torch.Generator().manual_seed(0))
    zeros = (layer.weight == 0).sum(1)
    assert torch.all(zeros == 45) and torch.all(layer.bias == 0)


def test_q_traces_reset_after_exploratory_actions_and_episode_ends():
    agent = StreamQ(4, 2, hidden=(8,), seed=0)
    obs = np.zeros(4, dtype=np.float32)

    def trace_norm():
        return sum(float(agent.learner.opt.state[p]["trace"].abs().sum())
                   for p in agent.q.parameters() if "trace" in agent.learner.opt.state[p])

    agent.update(obs, 0, 1.0, obs + 0.1, False, False, greedy=True)
    assert trace_norm() > 0
    agent.update(obs, 1, 1.0, obs + 0.2, False, False, greedy=False)  # exploratory: cut
    assert trace_norm() == 0
    agent.update(obs, 0, 1.0, obs + 0.1, False, False, greedy=True)
    assert trace_norm() > 0
    agent.update(obs, 0, 1.0, obs + 0.1, True, False, greedy=True)  # terminal: cut
    assert trace_norm() == 0


def test_td_learns_a_constant_return():
    agent = StreamTD(2, hidden=(16,), lr=1.0, gamma=0.5, seed=0)
    obs = np.ones(2, dtype=np.float32)
    for _ in range(300):
        agent.update(obs, 1.0, obs, terminated=False)
    assert agent.predict(obs) == pytest.approx(2.0, abs=0.1)  # 1 / (1 - 0.5)


@pytest.mark.parametrize("kind", ["obgd", "adaptive-obgd", "sgd", "adam"])
def test_every_update_rule_moves_the_prediction_towards_the_target(kind):
    torch.manual_seed(0)
    net = mlp(3, 1, (8,), seed=0, sparsity=0.0)
    lr = {"obgd": 1.0, "adaptive-obgd": 0.1, "sgd": 0.05, "adam": 0.01}[kind]
    learner = TraceLearner(list(net.parameters()), kind, lr, 0.9, 0.0, 2.0)
    x = torch.ones(3)
    before = float(net(x))
    v = net(x)[0]
    v.backward()
    learner.update(1.0, reset=True)  # target above the prediction
    assert float(net(x)) > before


def test_ac_handles_discrete_and_continuous_actions():
    for name in ("CartPole-v1", "Pendulum-v1"):
        env = make_env(name, 0)
        agent = make_agent("stream-ac", env, 0)
        obs, _ = env.reset(seed=0)
        for _ in range(20):
            a, _ = agent.act(obs)
            nxt, r, term, trunc, _ = env.step(agent.env_action(a))
            assert np.isfinite(agent.update(obs, a, float(r), nxt, term, trunc))
            obs = nxt if not (term or trunc) else env.reset()[0]


def test_stream_q_smoke_run_is_deterministic():
    a = train("stream-q", "CartPole-v1", 600, seed=3, progress=False)
    b = train("stream-q", "CartPole-v1", 600, seed=3, progress=False)
    assert a["returns"] == b["returns"] and len(a["returns"]) > 3


def test_bad_names_and_spaces_fail_before_training():
    with pytest.raises(ValueError, match="unknown environment 'NoSuchEnv-v9'"):
        train("stream-q", "NoSuchEnv-v9", 10, progress=False)
    with pytest.raises(ValueError, match="unknown agent 'dqn'"):
        train("dqn", "CartPole-v1", 10, progress=False)
    with pytest.raises(ValueError, match="stream-q needs a discrete action space"):
        train("stream-q", "Pendulum-v1", 10, progress=False)
    with pytest.raises(ValueError, match="unknown optimizer"):
        train("stream-q", "CartPole-v1", 10, optimizer="rmsprop", progress=False)
    with pytest.raises(ValueError, match="Discrete or 1-D Box"):
        StreamAC(4, gym.spaces.MultiBinary(3))
