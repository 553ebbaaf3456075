"""The README's results table from metrics/table1.md: python src/readme_results.py [--check]

One row per method with both datasets side by side (test Acc, w-F1 and Δ w-F1 against our MGLRA), the paper's
rows first. It replaces what stands between the README's ``<!-- results`` and ``<!-- /results -->`` markers;
``--check`` exits non-zero when the README's table is not the one metrics/table1.md gives (a test runs it)."""
from __future__ import annotations

import sys
from pathlib import Path

from erc.runtime.errors import InputError
from erc.reporting.pages import markdown_table, write_or_check
from erc.config.params import DATASETS

START, END = "<!-- results", "<!-- /results -->"


def table1_rows(text: str) -> dict:
    """(method, dataset) -> the cells of metrics/table1.md (experiment, seeds, Acc, w-F1, paper, Δ Acc, Δ w-F1)."""
    rows, dataset = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            dataset = line[3:].strip().lower()
        elif line.startswith("| ") and dataset and not line.startswith("| method "):  # not the header or the rule
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[(cells[0], dataset)] = cells[1:]
    return rows


def render(table_text: str) -> str:
    rows = table1_rows(table_text)
    methods = list(dict.fromkeys(m for m, _ in rows))
    header = ["method", *[f"{d.upper()} {what}" for d in DATASETS for what in ("Acc", "w-F1", "Δ w-F1")]]
    cells = []
    for paper_row in ("MGLRA", "MRL-E + MKD"):
        row = []
        for d in DATASETS:
            paper = rows.get((paper_row, d), [""] * 7)[4]
            acc, f1 = (paper.split(" / ") + ["", ""])[:2] if "/" in paper else ("—", "—")
            row += [acc, f1, ""]
        cells.append([f"*paper: {paper_row}*", *row])
    for method in methods:
        row = []
        for d in DATASETS:
            found = rows.get((method, d))
            if found is None or found[0] == "not run":
                row += ["not run", "", ""]
            else:
                row += [found[2], found[3], found[6] if len(found) > 6 else ""]
        cells.append([f"**{method}** (default)" if method == "MRL + MKD" else method, *row])
    return markdown_table(header, cells)


def replaced(readme: str, table: str) -> str:
    if START not in readme or END not in readme:
        raise InputError(f"README.md: no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    marker_line, rest = rest.split("\n", 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}{marker_line}\n{table}\n{END}{tail}"


def main() -> None:
    readme, table = Path("README.md").read_text(), Path("metrics/table1.md")
    if not table.is_file():
        sys.exit("error: metrics/table1.md: not found (python src/table.py first)")
    try:
        text = replaced(readme, render(table.read_text()))
    except InputError as err:
        sys.exit(f"error: {err}")
    write_or_check(text, "README.md", "python src/readme_results.py")


if __name__ == "__main__":
    main()
