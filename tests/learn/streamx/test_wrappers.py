import gymnasium as gym
import numpy as np
import pytest

from streamwise.learn.streamx.wrappers import NormalizeObservation, RunningStats, ScaleReward


def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    xs = rng.normal(3.0, 2.0, size=(500, 4))
    st = RunningStats((4,))
    for x in xs:
        st.update(x)
    np.testing.assert_allclose(st.mean, xs.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.var, xs.var(0), rtol=1e-10)


def test_normalize_observation_centres_and_scales():
    env = NormalizeObservation(gym.make("CartPole-v1"))
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    seen = [obs]
    for _ in range(2000):
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        seen.append(obs)
        if term or trunc:
            obs, _ = env.reset()
    late = np.asarray(seen[500:])
    assert np.all(np.abs(late.mean(0)) < 0.3) and np.all(np.abs(late.std(0) - 1) < 0.3)
    assert late.dtype == np.float32


def test_scale_reward_divides_by_return_std_and_resets_at_episode_end():
    env = ScaleReward(gym.make("CartPole-v1"), gamma=0.9)
    env.action_space.seed(0)
    env.reset(seed=0)
    returns, rewards = [], []
    ret = 0.0
    for _ in range(300):
        _, r, term, trunc, _ = env.step(env.action_space.sample())
        ret = 0.9 * ret + 1.0
        returns.append(ret)
        rewards.append(r)
        if term or trunc:
            ret = 0.0
            env.reset()
            assert env.ret == 0.0
    assert rewards[-1] == pytest.approx(1.0 / np.sqrt(np.var(returns) + 1e-8), rel=1e-6)


def test_normalize_observation_needs_a_box():
    with pytest.raises(ValueError, match="Box"):
        NormalizeObservation(gym.make("FrozenLake-v1"))
