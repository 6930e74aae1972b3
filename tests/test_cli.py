import json
import sys
import types

import pytest
import torch

import streamwise as sw
from streamwise.cli import main
from streamwise.core.factory import load_factory


@pytest.fixture()
def factory_module(monkeypatch):
    mod = types.ModuleType("sw_test_factories")
    mod.good = lambda: sw.Sequential(sw.Conv1d(1, 4, 5, padding="same"), sw.ELU(),
                                     sw.Conv1d(4, 1, 4, stride=2, padding=1))
    mod.plain = lambda: torch.nn.Conv1d(1, 1, 3)
    mod.not_a_model = lambda: 42
    monkeypatch.setitem(sys.modules, "sw_test_factories", mod)
    return mod


def test_verify_command_passes_and_prints_json(factory_module, capsys):
    code = main(["verify", "sw_test_factories:good", "--shape", "2,1,400", "--trials", "3",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    # delay: 2 (k=5, 'same') + 2 (k=4, stride 2, padding 1)
    assert code == 0 and out["passed"] and out["delay_frames"] == 4.0


def test_verify_command_float64(factory_module, capsys):
    assert main(["verify", "sw_test_factories:good", "--shape", "1,1,200", "--trials", "2",
                 "--dtype", "float64"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_verify_command_explains_bad_factories(factory_module):
    with pytest.raises(SystemExit, match="plain Conv1d"):
        main(["verify", "sw_test_factories:plain"])


def test_load_factory_raises_value_error_naming_what_was_expected(factory_module):
    with pytest.raises(ValueError, match="not a torch.nn.Module"):
        load_factory("sw_test_factories:not_a_model")
    with pytest.raises(ValueError, match="cannot load"):
        load_factory("sw_test_factories:missing")
    with pytest.raises(ValueError, match="pkg.module:factory"):
        load_factory("no_colon_here")


def test_cli_turns_a_bad_factory_into_exit_code_2(factory_module, capsys):
    assert main(["verify", "no_colon_here"]) == 2
    assert "expected pkg.module:factory, got 'no_colon_here'" in capsys.readouterr().err
    assert main(["convert", "sw_test_factories:not_a_model"]) == 2
    assert "gave int, not a torch.nn.Module" in capsys.readouterr().err


def test_rl_train_refuses_bad_combinations_before_training(capsys):
    assert main(["rl", "train", "--agent", "stream-q", "--env", "Pendulum-v1", "--steps", "5"]) == 2
    assert "needs a discrete action space" in capsys.readouterr().err
    assert main(["rl", "train", "--env", "NoSuchEnv-v0", "--steps", "5"]) == 2
    assert "unknown environment" in capsys.readouterr().err


def test_rl_train_writes_a_curve(tmp_path, capsys):
    assert main(["rl", "train", "--steps", "400", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "stream-q_CartPole-v1_seed0.png").exists()
    assert "steps/s" in capsys.readouterr().out
