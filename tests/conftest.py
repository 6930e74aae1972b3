import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True)
settings.load_profile("ci")
torch.set_num_threads(1)  # one thread per test worker (pytest -n auto: one worker per core)


@pytest.fixture(autouse=True)
def _one_thread():
    """A benchmark or example that asks for more threads gives them back after its test, so the
    tests after it on that worker do not compete with the other workers for the cores."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
