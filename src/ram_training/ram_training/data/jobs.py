"""Run independent generation jobs in parallel (one implementation for both worlds)."""
from __future__ import annotations


def run_jobs(fn, jobs: list, workers: int = 2, progress=None) -> list:
    """[fn(job) for job in jobs], in order, in `workers` forked processes (1: this process).
    `progress(done, total)` is called after each job."""
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(fn(job))
            if progress:
                progress(len(results), len(jobs))
        return results
    from multiprocessing import get_context
    with get_context("fork").Pool(workers) as pool:
        for result in pool.imap(fn, jobs, chunksize=1):
            results.append(result)
            if progress:
                progress(len(results), len(jobs))
    return results
