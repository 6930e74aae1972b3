"""The README's code sample runs as written."""

import re
from pathlib import Path


def test_readme_python_sample_runs(capsys):
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    exec(compile(code.group(1), "README.md", "exec"), {})
    assert "PASS" in capsys.readouterr().out
