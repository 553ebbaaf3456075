"""Training curves from several processes at once: DVCLive's end() must not fail on the shared step signal file."""
import os

import pytest

import dvclive.vscode
from erc.runtime.live import STEP_SIGNAL, live_logger


def test_a_logger_ends_cleanly_when_another_removed_the_step_signal_first(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # as inside `dvc exp run`
    signal = tmp_path / ".dvc" / "tmp" / "exps" / "run" / STEP_SIGNAL
    live = live_logger(str(tmp_path / "curves"))
    live.log_metric("loss", 1.0)
    live.next_step()
    assert signal.exists()  # DVCLive wrote the hint for the VS Code extension
    real_remove = os.remove

    def raced(path):  # another process removes the file between DVCLive's exists() and its remove()
        real_remove(path)
        real_remove(path)
    monkeypatch.setattr(dvclive.vscode.os, "remove", raced)
    live.end()
    assert (tmp_path / "curves" / "metrics.json").exists() and not signal.exists()


def test_other_missing_files_still_fail(tmp_path, monkeypatch):
    live = live_logger(str(tmp_path / "curves"))

    def broken():
        raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "curves" / "plots"))
    monkeypatch.setattr(live, "sync", broken)
    with pytest.raises(FileNotFoundError):
        live.end()


def test_staged_curves_land_with_a_plain_folders_mode(tmp_path, monkeypatch):
    import os
    import stat
    from erc.runtime.live import staged_curves
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        with staged_curves("plots/train/toy") as factory:
            live = factory("plots/train/toy/seed0")
            live.log_metric("train_loss", 1.0)
            live.next_step()
            live.end()
    finally:
        os.umask(old)
    folder = tmp_path / "plots/train/toy"
    assert (folder / "seed0").is_dir()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # not mkdtemp's private 0700
