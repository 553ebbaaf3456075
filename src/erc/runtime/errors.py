"""Errors in one clear line: ``InputError`` for bad input, ``one_line_errors`` to end a program on it (and on
file-system faults) with one ``error:`` line and exit 1, and ``run_stage``, every stage script's entry point."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import torch


class InputError(ValueError):
    """Bad input (file, layout, dimension, value or parameter); the message names the culprit."""


def first_line(err: Exception) -> str:
    """An exception's first line, or its type's name when it has no message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def os_error_line(err: OSError) -> str:
    """``<path>: <what the errno means>`` (no space left on device, read-only file system, permission denied)."""
    reason = err.strerror or first_line(err)
    return reason if err.filename is None else f"{err.filename}: {reason}"


@contextmanager
def one_line_errors():
    """Bad input and file-system faults end the program in one ``error:`` line, exit 1, no traceback."""
    try:
        yield
    except InputError as err:
        sys.exit(f"error: {err}")
    except OSError as err:
        sys.exit(f"error: {os_error_line(err)}")


def run_stage(main, datasets: str = "one") -> None:
    """``python src/<stage>.py <dataset>``: runs ``main(dataset)``; bad input and file-system faults (no space,
    read-only, permission) are one ``error:`` line, exit 1 (``one_line_errors``).
    ``datasets="any"``: ``python src/<stage>.py [<dataset> ...]`` runs ``main(*datasets)``.
    Torch runs on one thread: a thread count changes floating-point sums (feature extraction on 2 threads differs
    from 1 by ~1e-6, enough to move the epoch that validation picks), so outputs would depend on the machine's
    cores; parallelism comes from ``workers`` processes instead (``erc.runtime.parallel``)."""
    torch.set_num_threads(1)
    with one_line_errors():
        if datasets == "any":
            main(*sys.argv[1:])
            return
        if len(sys.argv) != 2:
            raise InputError(f"usage: python {sys.argv[0]} <dataset>")
        main(sys.argv[1])
