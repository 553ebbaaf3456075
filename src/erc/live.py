"""DVCLive loggers for training curves; the pipeline's dvc.yaml (not DVCLive) declares the plots."""
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
