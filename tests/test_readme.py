"""The README's code sample runs as written."""

import re
from pathlib import Path


def test_readme_python_sample_runs(capsys):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    exec(compile(code.group(1), "README.md", "exec"), {})
    assert "PASS" in capsys.readouterr().out


ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements: list[str]) -> dict[str, str]:
    """``name[extra]==1.2`` -> ``{"name": "1.2"}`` (names normalised as pip does)."""
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)", req)
        assert m is not None, f"not an exact pin: {req!r}"
        out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(3)
    return out


def test_set_up_is_the_readme_first_command_and_what_ci_runs():
    first = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first is not None
    commands = [ln for ln in first.group(1).splitlines() if ln and not ln.startswith("#")]
    assert commands == ["scripts/setup.sh"]
    assert "bash scripts/setup.sh --fresh" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_constraints_pin_every_requirement_at_the_version_pyproject_asks():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    dev = extras.pop("dev")
    # dev is every other extra, so `pip install -e ".[dev]"` installs everything CI uses
    assert dev == [f"streamwise[{','.join(extras)}]"]
    constraints = _pins((ROOT / "constraints.txt").read_text().split())
    assert "streamwise" not in constraints
    wanted = _pins(project["dependencies"] + [r for reqs in extras.values() for r in reqs])
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    no_deps = re.search(r"--no-deps((?: \S+==\S+)+)", setup)
    assert no_deps is not None
    wanted |= _pins(no_deps.group(1).split())
    differ = {n: (v, constraints.get(n)) for n, v in wanted.items() if constraints.get(n) != v}
    assert not differ, f"pin vs constraints.txt (rerun scripts/setup.sh --freeze): {differ}"
