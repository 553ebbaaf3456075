"""Generated documentation pages (docs/params.md, docs/results.md, the README's results table): written, or with
``--check`` compared with what is on disk, so that a test catches a page that no longer says what its source does."""
from __future__ import annotations

import sys
from pathlib import Path

from erc.runtime.files import save_text


def write_or_check(text: str, path: str | Path, command: str) -> None:
    """Write ``text`` to ``path``; with ``--check`` on the command line exit with one ``error:`` line if it differs."""
    path = Path(path)
    if "--check" in sys.argv[1:]:
        if not path.is_file() or path.read_text() != text:
            sys.exit(f"error: {path} is out of date: run {command}")
        return
    save_text(text, path)
    print(f"wrote {path}")


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table (pandas' ``to_markdown``); cells are written as given (no number reformatting)."""
    import pandas as pd
    return pd.DataFrame([[str(c) for c in row] for row in rows], columns=header).to_markdown(
        index=False, tablefmt="github", disable_numparse=True)
