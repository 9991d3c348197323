"""The README's training examples run as written, beat the full-covariance Gaussian they
print next to the flow, and running the ``fit`` one again resumes."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def training_examples() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Training"):text.index("## MADE / MAF / IAF")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_has_the_one_call_and_the_fit_example():
    one_call, driver = training_examples()
    assert "jt.fit_to_data(" in one_call and "jt.fit(" in driver


def test_readme_one_call_example_beats_the_gaussian(capsys):
    namespace = {}
    exec(compile(training_examples()[0], "README-one-call", "exec"), namespace)
    flow_nll, gaussian_nll = map(float, re.findall(r"-?\d+\.\d+", capsys.readouterr().out))
    assert flow_nll < gaussian_nll - 0.3, (flow_nll, gaussian_nll)
    assert len(namespace["history"]) >= 2


def test_readme_fit_example_trains_beats_the_gaussian_and_resumes(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.chdir(tmp_path)
    code = compile(training_examples()[1], "README-fit", "exec")
    first = {}
    exec(code, first)
    flow_nll, gaussian_nll = map(float, re.findall(r"-?\d+\.\d+", capsys.readouterr().out))
    assert flow_nll < gaussian_nll - 0.3, (flow_nll, gaussian_nll)
    result = first["result"]
    history = [h["validation"]["nll"] for h in result.history]
    assert result.best_metric == min(history) < history[0]
    assert (tmp_path / "runs/moons/learning_curve.png").exists()
    again = {}
    exec(code, again)
    assert "resumed from step" in capsys.readouterr().out
    assert again["result"].history == result.history
