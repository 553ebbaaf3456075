"""Independent units of work (the fold encoders of finetune_text, the seeds of train and of the bc-LSTM reference)
run ``workers`` at a time (params.yaml ``workers``) in spawned processes.

Every unit runs on one thread, in a worker or in this process alike, so the numbers do not depend on ``workers``
or on the machine's core count; only the wall time does. Jobs and results cross the process boundary as
``torch.save`` bytes (not as shared-memory tensors, which cost a file descriptor each)."""
from __future__ import annotations

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import torch


def _dumps(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _loads(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=False)  # our own bytes, made a moment ago by _dumps


def one_thread(fn: Callable, job):
    """``fn(job)`` with torch on one thread, the thread count restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(job)
    finally:
        torch.set_num_threads(threads)


def _in_worker(payload: bytes) -> bytes:
    fn, job = _loads(payload)
    return _dumps(one_thread(fn, job))


def run_parallel(fn: Callable, jobs: dict, workers: int) -> dict:
    """``{name: fn(job)}``, ``workers`` jobs at a time (1, or a single job: in this process, one after another).
    ``fn`` must be a module-level function and each job picklable (a small dataclass naming its fields); jobs start
    in the order given (put the longest first)."""
    if workers <= 1 or len(jobs) <= 1:
        return {name: one_thread(fn, job) for name, job in jobs.items()}
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked OpenMP or tokenizer state
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = {name: pool.submit(_in_worker, _dumps((fn, job))) for name, job in jobs.items()}
        return {name: _loads(future.result()) for name, future in futures.items()}
