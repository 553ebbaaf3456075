"""Table 1's committed records (``metrics/table1/<row>.json``): what the table read of each row's run, so that a clone
rebuilds the same table without the DVC experiments; and the test dialogues of a prediction table."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from erc.reporting.runs import RUN_STAGES, exp_file
from erc.runtime.errors import InputError
from erc.runtime.files import load_torch, save_text


# Each row of the last table built, with what the table read of it: its experiment's params, the train / evaluate
# stages of its dvc.lock, its metrics and its test predictions. DVC's experiments live in one repository copy's
# refs (a clone or a CI run has none); the records are committed, so that a clone rebuilds the same table and
# ``--run`` reruns only what the records do not hold for the current inputs.
RECORDS = Path("metrics/table1")


def record_of(name: str, found: dict) -> dict:
    """The record of row ``name`` from ``find_rows`` entries (dataset -> entry) of one experiment or several."""
    datasets = {}
    for d, entry in found.items():
        exp, preds = entry["exp"], entry["preds"].sort_values(["seed", "utterance"])
        stages = (yaml.safe_load(exp_file(exp, "dvc.lock") or "") or {}).get("stages") or {}
        first = preds[preds["seed"] == preds["seed"].iloc[0]]
        datasets[d] = {
            "experiment": exp["name"], "rev": exp["rev"], "params": exp["params"],
            "lock": {k: stages[k] for k in (f"{stage}@{d}" for stage in RUN_STAGES) if k in stages},
            "metrics": entry["metrics"],
            "test": {"utterance": first["utterance"].tolist(), "dialogue": first["dialogue"].astype(str).tolist(),
                     "label": first["label"].tolist(),
                     "prediction": {str(seed): group["prediction"].tolist() for seed, group in preds.groupby("seed")}}}
    return {"row": name, "datasets": datasets}


def save_records(rows: dict, features: str = "data/features/{dataset}.pt", folder: Path = RECORDS) -> None:
    """One JSON per row of ``rows`` (``find_rows``) under ``folder``; records of rows no longer found are removed."""
    by_row = {}
    for (name, d), entry in rows.items():
        preds = with_dialogues(entry["preds"], features.format(dataset=d), f"{entry['exp']['name']}'s predictions")
        by_row.setdefault(name, {})[d] = {**entry, "preds": preds}
    folder.mkdir(parents=True, exist_ok=True)
    keep = set()
    for name, found in by_row.items():
        path = folder / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".json")
        save_text(json.dumps(record_of(name, found), separators=(",", ":"), sort_keys=True) + "\n", path)  # stable bytes
        keep.add(path)
    for stale in set(folder.glob("*.json")) - keep:
        stale.unlink()


def load_records(folder: Path = RECORDS) -> list[dict]:
    """The committed records as experiments (one per row and dataset) whose files are the record's, not git's."""
    return [exp for path in sorted(folder.glob("*.json")) for exp in load_record(path)]


def load_record(path: Path) -> list[dict]:
    """One record file as experiments, one per dataset it holds (``load_records``)."""
    found = []
    try:
        record = json.loads(Path(path).read_text())
        for d, r in record["datasets"].items():
            test = r["test"]
            lines = ["seed,utterance,dialogue,label,prediction"] + [
                f"{seed},{u},{dialogue},{label},{p}" for seed, preds in test["prediction"].items()
                for u, dialogue, label, p in zip(test["utterance"], test["dialogue"], test["label"], preds)]
            files = {"dvc.lock": yaml.safe_dump({"stages": r["lock"]}),
                     f"metrics/details/{d}.json": json.dumps(r["metrics"]),
                     f"plots/{d}/test_predictions.csv": "\n".join(lines) + "\n"}
            found.append({"rev": r["rev"], "name": r["experiment"], "params": r["params"], "files": files})
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{path}: not a Table 1 record ({type(err).__name__}: {err})") from None
    return found


@functools.lru_cache(maxsize=None)
def feature_file_dialogues(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(dialogue id, label) of each utterance of a feature file, whose utterances are stored dialogue after dialogue."""
    # the three entries it needs, read as stored (the labels match a table's rows to the file's; nothing is chosen)
    feats = load_torch(path, "feature file", ("dialogue_ids", "lengths", "labels"))
    dialogues = np.repeat(np.asarray(feats["dialogue_ids"], dtype=object), feats["lengths"].numpy())
    return dialogues, feats["labels"].numpy()


def with_dialogues(table: pd.DataFrame, features: str | Path, where: str) -> pd.DataFrame:
    """``table`` with its 'dialogue' column; CSVs written before the column existed get it from the feature file."""
    if "dialogue" in table:
        return table.assign(dialogue=table["dialogue"].astype(str))
    if not Path(features).is_file():
        raise InputError(f"{where} has no 'dialogue' column and {features} (to map utterances to dialogues) is not found")
    dialogue, label = feature_file_dialogues(str(features))
    utterance = table["utterance"].to_numpy()
    # the labels check that the feature file is the one the predictions were made on
    if utterance.max() >= len(dialogue) or not np.array_equal(label[utterance], table["label"].to_numpy()):
        raise InputError(f"{where} has no 'dialogue' column and its utterances do not match {features}")
    return table.assign(dialogue=dialogue[utterance].astype(str))
