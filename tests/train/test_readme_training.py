"""The README's training example runs as written, and running it again resumes."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def training_example() -> str:
    text = README.read_text()
    section = text[text.index("## Training"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_training_example_trains_and_resumes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(training_example(), "README-training", "exec")
    first = {}
    exec(code, first)
    result = first["result"]
    history = [h["validation"]["nll"] for h in result.history]
    assert result.best_metric == min(history) < history[0]
    assert (tmp_path / "runs/moons/learning_curve.png").exists()
    again = {}
    exec(code, again)
    assert again["result"].history == result.history
