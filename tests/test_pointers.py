"""Every pointer params.yaml makes into the docs ((README, "Section") or (docs/<file>.md, "Section")) names a
section that exists there: a heading or a bold paragraph that starts with those words."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POINTER = re.compile(r'(README|docs/[\w.-]+\.md),\s*"([^"]+)"')


def pointers(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\n\s*#\s*", " ", text)  # a pointer may wrap onto the next comment line
    return POINTER.findall(joined)


def sections(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [re.sub(r"^#+\s*(\([^)]*\)\s*)?", "", line) for line in lines if line.startswith("#")] + \
        [line.lstrip("*") for line in lines if line.startswith("**")]


def test_params_pointers_name_existing_sections():
    found = pointers((ROOT / "params.yaml").read_text())
    assert len(found) >= 8  # the file's pointers were found at all
    missing = []
    for file, section in found:
        path = ROOT / ("README.md" if file == "README" else file)
        if not path.is_file() or not any(s.startswith(section) for s in sections(path)):
            missing.append(f"{file}, {section!r}")
    assert not missing, "params.yaml points at sections that do not exist: " + "; ".join(missing)


def test_the_check_sees_a_stale_pointer(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n## Fine-tuned text: the recipe\n**Cross-fitting by session, judged** ...\n")
    assert pointers('x  # see (docs/a.md, "Fine-tuned\n  # text")') == [("docs/a.md", "Fine-tuned text")]
    names = sections(doc)
    assert any(s.startswith("Fine-tuned text") for s in names)
    assert any(s.startswith("Cross-fitting by session") for s in names)
    assert not any(s.startswith("Why MGLRA was losing") for s in names)
