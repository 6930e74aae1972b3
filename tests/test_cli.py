import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import streamwise as sw
from streamwise.cli import build_parser, main
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


def test_verify_converts_a_plain_torch_model_and_says_so(factory_module, capsys):
    assert main(["verify", "sw_test_factories:plain", "--shape", "1,1,200", "--trials", "2"]) == 0
    out, err = capsys.readouterr()
    assert "is a plain Conv1d; converting it with sw.convert" in err
    assert "PASS" in out


def test_verify_points_to_streamwise_layers_when_conversion_fails(factory_module, capsys):
    factory_module.centred = lambda: Centred()
    assert main(["verify", "sw_test_factories:centred", "--shape", "1,1,64"]) == 1
    err = capsys.readouterr().err
    assert "cannot be converted; build it from streamwise layers" in err


class Centred(torch.nn.Module):
    """Subtracts the mean over all time: no stream can know it before the end."""

    def forward(self, x):
        return x - x.mean(-1, keepdim=True)


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


# one rejected value per command: (argv, the message argparse prints after "argument OPT: ")
BAD_NUMBERS = [
    (["demo", "--chunk-ms", "0"], "--chunk-ms: must be >= 0.0625, got 0"),
    (["demo", "--chunk-ms", "-5"], "--chunk-ms: must be >= 0.0625, got -5"),
    (["demo", "llm", "--window", "4"], "--window: must be > 4, got 4"),
    (["verify", "m:f", "--trials", "0"], "--trials: must be >= 1, got 0"),
    (["verify", "m:f", "--shape", "1,0,16"], "--shape: must look like 1,1,16000 (integers >= 1)"),
    (["convert", "m:f", "--sample-rate", "nan"], "--sample-rate: must be a finite number, got"),
    (["bench", "conv", "--seconds", "0"], "--seconds: must be > 0, got 0"),
    (["bench", "seq", "--epochs", "1.5"], "--epochs: must be an integer >= 1, got '1.5'"),
    (["bench", "delta", "--repeats", "0"], "--repeats: must be >= 1, got 0"),
    (["bench", "serve", "--soak", "-1"], "--soak: must be >= 0, got -1"),
    (["bench", "attention", "--layers", "0"], "--layers: must be >= 1, got 0"),
    (["bench", "llm", "--threads", "0"], "--threads: must be >= 1, got 0"),
    (["bench", "finalmlp", "--limit", "0"], "--limit: must be >= 1, got 0"),
    (["rl", "train", "--lr", "0"], "--lr: must be > 0, got 0"),
    (["rl", "compare", "--seeds", "0"], "--seeds: must be >= 1, got 0"),
    (["rl", "predict", "--gamma", "1"], "--gamma: must be >= 0 and < 1, got 1"),
    (["nab", "run", "--detector", "x", "--jobs", "0"], "--jobs: must be >= 1, got 0"),
    (["nab", "forecast", "--warmup", "-1"], "--warmup: must be >= 0, got -1"),
    (["serve", "--port", "70000"], "--port: must be >= 0 and <= 65535, got 70000"),
]


@pytest.mark.parametrize("argv, message", BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_numeric_arguments_are_checked_with_their_range(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"error: argument {message}" in capsys.readouterr().err


def _numeric_actions(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _numeric_actions(child, (*path, name))
        elif (action.type is not None or isinstance(action.default, int | float | tuple)) \
                and not isinstance(action.default, bool):
            yield " ".join(path), action


def test_every_numeric_argument_of_every_command_names_its_range():
    actions = list(_numeric_actions(build_parser()))
    assert {cmd for cmd, _ in actions} >= {"demo", "verify", "convert", "bench conv", "rl train",
                                           "nab run", "nab forecast", "serve", "bench llm"}
    unchecked = [f"{cmd} {a.option_strings}" for cmd, a in actions
                 if not hasattr(a.type, "allowed")]
    assert not unchecked, unchecked


def test_numbers_in_range_parse_to_their_type():
    args = build_parser().parse_args(["demo", "--chunk-ms", "2.5", "--snr", "-3"])
    assert args.chunk_ms == 2.5 and args.snr == -3.0
    args = build_parser().parse_args(["convert", "m:f", "--shape", "2,1,50", "--time-dim", "-1"])
    assert args.shape == (2, 1, 50) and args.time_dim == -1


def test_convert_checks_the_time_axis_against_the_shape(capsys):
    assert main(["convert", "m:f", "--shape", "1,1,16", "--time-dim", "3"]) == 2
    err = capsys.readouterr().err
    assert "--time-dim must be >= -3 and <= 2 for a 3-axis --shape, got 3" in err


def test_a_missing_extra_is_named_and_the_other_commands_still_run(tmp_path):
    # a fresh interpreter in which gymnasium (the rl extra) cannot be imported
    code = ("import sys; sys.modules['gymnasium'] = None\n"
            "from streamwise.cli import main\n"
            "assert main(['verify', 'no_colon_here']) == 2\n"
            "assert main(['rl', 'train', '--steps', '5']) == 2\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "expected pkg.module:factory" in done.stderr
    assert "streamwise rl: error: gymnasium is not installed" in done.stderr


def test_a_factory_beside_the_working_directory_is_found(tmp_path, monkeypatch):
    """Console scripts do not put the working directory on sys.path; load_factory finds a
    user's ``mymodel:factory`` there as ``python -m`` would."""
    (tmp_path / "sw_here_model.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Conv1d(1, 2, 3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert isinstance(load_factory("sw_here_model:build"), torch.nn.Conv1d)
    with pytest.raises(ValueError, match="cannot load 'sw_nowhere:build'"):
        load_factory("sw_nowhere:build")


def test_convert_says_whose_failure_an_unexpected_error_is(factory_module, capsys, monkeypatch):
    """A converter error that is not a refusal is called a streamwise bug when the model runs
    on the example, and the model's own failure when it does not."""
    def broken(*args, **kwargs):
        raise RuntimeError("boom in a node op")

    monkeypatch.setattr(sys.modules["streamwise.convert.convert"], "convert", broken)
    assert main(["convert", "sw_test_factories:plain", "--shape", "1,1,64"]) == 1
    err = capsys.readouterr().err
    assert "internal converter error" in err and "boom in a node op" in err
    factory_module.wrong_shape = lambda: torch.nn.Conv1d(3, 1, 3)  # takes 3 channels, given 1
    assert main(["convert", "sw_test_factories:wrong_shape", "--shape", "1,1,64"]) == 2
    assert "fails on the example input (1, 1, 64) itself" in capsys.readouterr().err


def test_convert_opens_with_a_verdict_and_folds_per_frame_rows_unless_ops(factory_module,
                                                                          capsys):
    factory_module.net = lambda: torch.nn.Sequential(
        torch.nn.Conv1d(1, 4, 5), torch.nn.ReLU(), torch.nn.Conv1d(4, 1, 3, padding=1),
        torch.nn.ReLU())
    argv = ["convert", "sw_test_factories:net", "--shape", "1,1,64", "--dtype", "float64",
            "--trials", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: streams exactly (float64 error "), out
    assert "of the output scale), latency " in out.splitlines()[0]
    assert "2 per-frame ops (ReLU 2), no state (--ops lists every row)" in out
    assert "(ReLU)" not in out and "(Conv1d)" in out
    assert main([*argv, "--ops"]) == 0
    out = capsys.readouterr().out
    assert out.count("(ReLU)") == 2 and "per-frame ops" not in out


def test_convert_refusal_opens_with_the_verdict_the_models_reason_first(factory_module, capsys):
    factory_module.mixed = lambda: torch.nn.Sequential(
        torch.nn.AvgPool1d(3, 1, padding=1, count_include_pad=False), torch.nn.GroupNorm(1, 1))
    assert main(["convert", "sw_test_factories:mixed", "--shape", "1,1,64"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("REFUSED: sw_test_factories:mixed cannot be converted: 1 reason in the "
                        "model itself, 1 converter limit")
    assert lines[1].startswith("  - in the model: ") and "GroupNorm" in lines[1]
    assert lines[3].startswith("  - converter limit: ") and "count_include_pad" in lines[3]


class _BatchLoop(torch.nn.Module):
    def forward(self, x):
        for _ in range(x.shape[0]):  # Python on the batch size: tracing stops here
            x = x + 1
        return x


def test_convert_labels_a_stopped_trace_a_converter_limit(factory_module, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # paths are shown relative to it
    factory_module.loop = _BatchLoop
    assert main(["convert", "sw_test_factories:loop", "--shape", "1,1,64"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("REFUSED: sw_test_factories:loop cannot be converted: 1 converter limit "
                        "(tracing stops at the first)")
    assert lines[1].startswith("  - converter limit: cannot trace _BatchLoop at tests/test_cli.py:")
    assert "follows the batch size" in lines[1] and "further reasons may follow" in lines[2]


class _ReflectToFour(torch.nn.Module):
    """Pads short inputs differently (a branch on the length, as EnCodec's pad1d does)."""

    def forward(self, x):
        if x.shape[-1] < 8:
            return torch.nn.functional.pad(x, (0, 1))
        return torch.nn.functional.conv1d(x, torch.ones(1, 1, 3), padding=1)


def test_convert_min_length_fixes_a_branch_that_only_short_streams_take(factory_module,
                                                                        capsys):
    factory_module.short_branch = _ReflectToFour
    argv = ["convert", "sw_test_factories:short_branch", "--shape", "1,1,40", "--trials", "2"]
    assert main(argv) == 1
    assert "--min-length N" in capsys.readouterr().err
    assert main([*argv, "--min-length", "8"]) == 0
    assert capsys.readouterr().out.startswith("OK: streams exactly")


def test_convert_of_a_model_that_fails_on_its_example_blames_the_shape(factory_module, capsys):
    factory_module.three_channels = lambda: torch.nn.Sequential(torch.nn.Conv1d(3, 1, 3))
    assert main(["convert", "sw_test_factories:three_channels", "--shape", "1,1,64"]) == 2
    err = capsys.readouterr().err
    assert "fails on the example input (1, 1, 64) itself" in err and "--shape" in err
    assert "While executing" not in err and "REFUSED" not in err


def test_bench_splash_runs_from_the_command_line_on_a_prefix(tmp_path, capsys):
    assert main(["bench", "splash", "--limit", "4000", "--out", str(tmp_path), "--quiet"]) == 0
    result = json.loads((tmp_path / "splash.json").read_text())
    assert result["setting"]["ratings"] == 4000
    assert (tmp_path / "splash.png").stat().st_size > 0
    assert "SPLASH" in capsys.readouterr().out
