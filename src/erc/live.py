"""DVCLive loggers for training curves; the pipeline's dvc.yaml (not DVCLive) declares the plots."""
from dvclive import Live


def live_logger(directory: str) -> Live:
    return Live(directory, save_dvc_exp=False, dvcyaml=None)
