"""The README and docs/ say what the repository does today: generated pages match their sources, every figure in
the README is one the metrics hold, and the README stays a user's page (short, no commit hashes)."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def run_script(name, *args):
    return subprocess.run([sys.executable, f"src/{name}", *args], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("script", ["params_doc.py", "results_doc.py", "readme_results.py"])
def test_generated_pages_are_up_to_date(script):
    result = run_script(script, "--check")
    assert result.returncode == 0, result.stderr


def test_params_page_covers_every_schema_key():
    from erc.config.params import flat_defaults
    page = (ROOT / "docs" / "params.md").read_text()
    documented = set(re.findall(r"^\| `([\w.]+)` +\|", page, re.M))
    for key in flat_defaults():
        assert key in documented or any(key.startswith(d + ".") for d in documented), key


def test_a_stale_params_page_is_caught(tmp_path, monkeypatch):
    import params_doc
    monkeypatch.chdir(ROOT)
    text = params_doc.render()
    row = next(line for line in text.splitlines() if line.startswith("| `mkd.lambda_kd` "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "float ≥ 0" and "train" in cells[4]
    # a key whose meaning nobody wrote (its field's description) is refused, so a new key cannot go undocumented
    from erc.config.sections import Mkd
    monkeypatch.setattr(Mkd.model_fields["lambda_kd"], "description", None)
    with pytest.raises(KeyError, match="mkd.lambda_kd"):
        params_doc.render()


def test_readme_is_short_starts_with_the_two_commands_and_cites_no_commit():
    lines = README.splitlines()
    assert len(lines) <= 250
    head = "\n".join(lines[:10])
    # the test command is the one CI runs (.ci/run), word for word
    ci = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip().startswith("python -m pytest")]
    assert len(ci) == 1 and ci[0].endswith(" tests")
    assert "pip install -r requirements.txt && dvc repro" in head and f"\n{ci[0]}  " in head
    assert not re.search(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b", README), "a commit hash"


def test_every_figure_in_the_readme_is_in_the_metrics():
    sources = "".join((ROOT / path).read_text() for path in ("metrics/table1.md", "docs/results.md",
                                                              "docs/seed_study.md"))  # all generated from metrics
    prose = re.sub(r"Python \d+\.\d+|torch==[\d.]+", "", README)  # versions are not figures
    figures = re.findall(r"(?<![\d.])[+-]?\d+\.\d\d(?![\d])", prose)
    assert len(figures) > 40  # the results table is there
    missing = sorted({f for f in figures if f.lstrip("+") not in sources and f not in sources})
    assert not missing, f"README figures in no metrics file: {missing}"


def test_params_yaml_points_at_sections_that_exist():
    """Each ``(README | docs/<page>.md, "Title")`` params.yaml cites names a heading or a bold paragraph title of
    that page, and each docs/ path it names exists: the evidence for a default cannot move without the pointer."""
    text = (ROOT / "params.yaml").read_text()
    cited = re.findall(r'(README|docs/[\w/.-]+\.md),\s*"([^"]+)"', text)
    assert len(cited) >= 5
    for page, title in cited:
        lines = (ROOT / ("README.md" if page == "README" else page)).read_text().splitlines()
        titles = [line.lstrip("#").strip() for line in lines if line.startswith("#")]
        titles += [part for line in lines for part in line.split("**")[1::2]]
        assert any(t.startswith(title) for t in titles), f'params.yaml cites {page}, "{title}": no such section'
    for path in re.findall(r"(docs/[\w/.-]+\.\w+)", text):
        assert (ROOT / path).exists(), f"params.yaml cites {path}, which does not exist"
