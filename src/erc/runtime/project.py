"""A fresh copy of the project, for a run from nothing: its files without results (the tests'
end-to-end pipeline, ``benchmarks/corpus_scale.py``)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def copy_project(root: str | Path, dest: str | Path) -> None:
    """The project's files in ``root`` as the working tree has them (tracked and not yet deleted, or new and not
    ignored) copied into ``dest``, without ``metrics/``, ``plots/`` and ``dvc.lock``: nothing of a previous run
    carried over."""
    root, dest = Path(root), Path(dest)
    listed = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listed, cwd=root, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("metrics/", "plots/")) or name == "dvc.lock":
            continue
        if not (root / name).is_file():  # deleted in the working tree, not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dest / name)
