import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from erc.table import paired_bootstrap, row_name, weighted_f1


def predictions(pred_by_seed, labels):
    return pd.concat([pd.DataFrame({"seed": s, "utterance": np.arange(len(labels)), "label": labels, "prediction": p})
                      for s, p in enumerate(pred_by_seed)])


def test_weighted_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 6, 300), rng.integers(0, 6, 300)
    p[:5] = 5
    assert np.isclose(weighted_f1(y, p, 6), f1_score(y, p, average="weighted"))


def test_row_names_follow_the_switches():
    assert row_name({"mrl": {"enabled": False, "shared": True}, "mkd": {"enabled": False}}) == "MGLRA"
    assert row_name({"mrl": {"enabled": True, "shared": True}, "mkd": {"enabled": True}}) == "MRL-E + MKD"
    assert row_name({"mrl": {"enabled": True, "shared": False}, "mkd": {"enabled": False}}) == "MRL"


def test_paired_bootstrap_known_answers():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    noisy = [np.where(rng.random(400) < 0.5, labels, rng.integers(0, 3, 400)) for _ in range(2)]
    base = predictions(noisy, labels)
    point, low, high = paired_bootstrap(base, base, 3, n_boot=50)
    assert np.allclose([point, low, high], 0)  # a method against itself: exactly zero
    perfect = predictions([labels, labels], labels)
    point, low, high = paired_bootstrap(perfect, base, 3, n_boot=200)
    accuracy_gap = 100 - 100 * np.mean([(p == labels).mean() for p in noisy])
    assert np.isclose(point[0], accuracy_gap) and low[0] < point[0] < high[0] and low[0] > 0


def test_rows_differ_only_in_the_switches():
    from erc.table import same_setup
    base = {"mrl": {"enabled": True, "shared": False, "nesting": [8]}, "mkd": {"enabled": True, "lambda_kd": 1.0}}
    assert same_setup({"mrl": {"enabled": False, "shared": True, "nesting": [8]},
                       "mkd": {"enabled": False, "lambda_kd": 1.0}}, base)
    assert not same_setup({"mrl": {"enabled": True, "shared": False, "nesting": [8]},
                           "mkd": {"enabled": True, "lambda_kd": 0.0}}, base)
