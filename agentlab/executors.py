"""Running many independent jobs (agent runs) at once: on this process's event loop, or as Ray tasks.

One implementation for every caller that fans work out (`agentlab batch`, the evaluation harness): a caller
gives the job's body two ways — `arun(job)`, a coroutine run here with at most `concurrency` at once (so the
jobs can share one model and its HTTP connections), and `run(job)`, a blocking function pickled to Ray
workers (module-level, building what it needs where it runs) — and gets each result through `finished` as
soon as it is done, in completion order, so a caller that writes results as they come loses nothing when
interrupted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")

EXECUTORS: tuple[str, ...] = ("local", "ray")


class ExecutorUnavailable(RuntimeError):
    """The executor asked for cannot run here (Ray is not installed, or the cluster cannot be reached)."""


async def close_model_client(model: Any) -> None:
    """Close the model's HTTP client for the running loop before the loop goes (models without one: no-op);
    the model stays usable on a later loop."""
    close = getattr(model, "aclose", None)
    if close is not None:
        await close()


def run_jobs(
    jobs: Sequence[JobT],
    finished: Callable[[JobT, ResultT], None],
    *,
    arun: Callable[[JobT], Awaitable[ResultT]],
    run: Callable[[JobT], ResultT],
    executor: str = "local",
    concurrency: int = 4,
    aclose: Callable[[], Awaitable[None]] | None = None,
    failed: Callable[[JobT, BaseException], None] | None = None,
    ray_address: str | None = None,
    pythonpath: Sequence[str] = (),
) -> None:
    """Run every job, calling `finished(job, result)` as each one ends.

    Args:
        arun: The job's body for `executor="local"`, awaited on one event loop, `concurrency` at a time.
        run: The job's body for `executor="ray"`: a picklable blocking function, one Ray task per job.
        aclose: Awaited on the local loop after the last job (e.g. to close an HTTP client opened on it).
        failed: Called instead of `finished` when a job raised (locally, or a Ray task or worker failed);
            without it the first failure propagates once the other running jobs are done.
        ray_address: An existing Ray cluster (`ray.init(address=...)`, e.g. "auto" or "ray://host:10001");
            None uses the Ray instance already initialised in this process, else starts a local one.
        pythonpath: Directories put on the PYTHONPATH of a local Ray instance's workers (so they import the
            same code as this process).
    """
    if executor == "local":
        asyncio.run(_run_local(jobs, finished, arun, concurrency, aclose, failed))
    elif executor == "ray":
        _run_on_ray(jobs, finished, run, failed, ray_address, pythonpath)
    else:
        raise ValueError(f"unknown executor {executor!r}; use {' or '.join(EXECUTORS)}")


async def _run_local(
    jobs: Sequence[JobT],
    finished: Callable[[JobT, ResultT], None],
    arun: Callable[[JobT], Awaitable[ResultT]],
    concurrency: int,
    aclose: Callable[[], Awaitable[None]] | None,
    failed: Callable[[JobT, BaseException], None] | None,
) -> None:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(job: JobT) -> None:
        async with gate:
            try:
                result = await arun(job)
            except Exception as error:
                if failed is None:
                    raise
                failed(job, error)
                return
        finished(job, result)

    try:
        outcomes = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
    finally:
        if aclose is not None:
            await aclose()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def _run_on_ray(
    jobs: Sequence[JobT],
    finished: Callable[[JobT, ResultT], None],
    run: Callable[[JobT], ResultT],
    failed: Callable[[JobT, BaseException], None] | None,
    address: str | None,
    pythonpath: Sequence[str],
) -> None:
    ray = _connect_ray(address, pythonpath)
    task = ray.remote(_call)
    waiting: dict[Any, JobT] = {task.remote(run, job): job for job in jobs}
    try:
        while waiting:
            done, _ = ray.wait(list(waiting), num_returns=1)
            for ref in done:
                job = waiting.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as error:  # the task raised, or its worker died
                    if failed is None:
                        raise
                    failed(job, error)
                    continue
                finished(job, result)
    finally:
        for ref in waiting:  # interrupted: do not leave the cluster working for nobody
            ray.cancel(ref)


def _call(run: Callable[[JobT], ResultT], job: JobT) -> ResultT:
    """The body of every Ray task: `run` may be any picklable callable (a partial, a bound method), which
    `ray.remote` itself would not take."""
    return run(job)


def _connect_ray(address: str | None, pythonpath: Sequence[str]) -> Any:
    """The `ray` module, initialised: on `address`, else as the caller already initialised it, else a local
    instance whose workers see `pythonpath`."""
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable("the ray executor needs Ray: pip install 'agentlab[scale]'") from None
    if address is not None:
        if ray.is_initialized():
            raise ExecutorUnavailable("Ray is already initialised in this process; do not pass an address as well")
        try:
            ray.init(address=address)
        except ConnectionError as error:
            raise ExecutorUnavailable(f"cannot reach the Ray cluster at {address}: {error}") from None
    elif not ray.is_initialized():
        env = {"PYTHONPATH": os.pathsep.join(pythonpath)} if pythonpath else {}
        ray.init(include_dashboard=False, runtime_env={"env_vars": env} if env else None)
    return ray
