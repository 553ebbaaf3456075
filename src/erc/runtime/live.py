"""DVCLive loggers for training curves; the pipeline's dvc.yaml (not DVCLive) declares the plots."""
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from dvclive import Live

# DVCLive's hint file for the VS Code extension during `dvc exp run`, shared by every logger of the repository
STEP_SIGNAL = "DVCLIVE_STEP_COMPLETED"


class SharedLive(Live):
    """A ``Live`` that several processes may end at once (``workers`` > 1, or queued experiments): DVCLive's last
    act in ``end()`` removes the step signal file after checking that it exists, and when another logger removes
    it in between, that raises FileNotFoundError though every curve and summary is already written."""

    def end(self):
        try:
            super().end()
        except FileNotFoundError as err:
            if Path(err.filename or "").name != STEP_SIGNAL:
                raise


def live_logger(directory: str) -> Live:
    return SharedLive(directory, save_dvc_exp=False, dvcyaml=None)


@contextmanager
def staged_curves(*folders: str):
    """A ``live_factory`` for a stage whose curves go to ``folders`` (``plots/train/<dataset>``): its loggers write
    into a temporary folder beside each, moved onto it when the block ends without error, so the curves are whole
    or absent like every other output (a killed run leaves no partial curves, nor an earlier run's beside this
    one's). A killed run's temporary folders are removed when the stage next starts."""
    staged = {}
    try:
        for folder in map(Path, folders):
            folder.parent.mkdir(parents=True, exist_ok=True)
            for stale in folder.parent.glob(f".{folder.name}.curves-*"):
                shutil.rmtree(stale, ignore_errors=True)
            staged[str(folder)] = tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.curves-")
        yield partial(_staged_logger, tuple(staged.items()))  # a module-level function: workers can unpickle it
        mode = 0o777 & ~_umask()  # mkdtemp's folder is private (0700); the curves get a plain folder's mode
        for folder, tmp in staged.items():
            os.chmod(tmp, mode)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
    finally:
        for tmp in staged.values():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _staged_logger(staged: tuple, directory: str) -> Live:
    """``live_logger`` for ``directory``, inside the temporary folder of the staged folder that holds it."""
    for folder, tmp in staged:
        if Path(directory).is_relative_to(folder):
            return live_logger(str(Path(tmp) / Path(directory).relative_to(folder)))
    raise ValueError(f"{directory}: outside the stage's curve folders {[folder for folder, _ in staged]}")
