"""The paper's Table 1 from DVC experiments: python src/table.py -> metrics/table1.md

Run the rows first (README "Table 1"): dvc exp run --queue -S ... for each row, then dvc queue start -j N."""
from erc.io import save_text
from erc.params import load_params
from erc.table import build_table, experiments_from_dvc


def main() -> None:
    text = build_table(experiments_from_dvc(), load_params())
    save_text(text, "metrics/table1.md")
    print(text)


if __name__ == "__main__":
    main()
