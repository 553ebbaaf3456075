"""The paper's Table 1 from DVC experiments: python src/table.py -> metrics/table1.md

Run the rows first (README "Table 1"): dvc exp run --queue -S ... for each row, then dvc queue start -j N.
With no experiment matching params.yaml it says why and leaves metrics/table1.md as it was."""
import sys

from erc.io import InputError, save_text
from erc.params import load_params
from erc.table import build_table, experiments_from_dvc


def main() -> None:
    try:
        text = build_table(experiments_from_dvc(), load_params())
    except InputError as err:
        sys.exit(f"error: {err}")
    save_text(text, "metrics/table1.md")
    print(text)


if __name__ == "__main__":
    main()
