"""Dynamic batching: requests that arrive within `max_wait_ms` of the first waiting one are
transcribed together, up to `max_batch`, by one worker; the model runs in a thread so the event
loop keeps accepting uploads meanwhile.

The wait is adaptive: a request waits for batch-mates only while the traffic has shown concurrency
(the last batch had several requests, or requests queued while it ran). A lone client's requests never
overlap, so they start at once instead of paying `max_wait_ms` each for company that never comes
(measured: 1 client lost 18% of its throughput to a 50 ms wait, benchmarks/RESULTS.md)."""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from liteasr.serve.engine import Options, Result


class QueueFull(Exception):
    """More requests are waiting than the queue holds: the client should retry later."""


@dataclass
class Job:
    audio: np.ndarray
    options: Options
    future: asyncio.Future


class Batcher:
    def __init__(self, run: Callable[[list[np.ndarray], Options], list[Result]], max_batch: int = 8,
                 max_wait_ms: float = 50, max_queue: int = 64):
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_queue)
        self.pending = 0  # requests submitted and not yet answered
        self.concurrent = False  # has the traffic shown concurrency lately? (then waiting pays)
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="liteasr-model")
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """After the server has drained: nothing is waiting any more."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._model_thread.shutdown(wait=True)

    async def submit(self, audio: np.ndarray, options: Options) -> Result:
        job = Job(audio, options, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull from None
        self.pending += 1
        try:
            return await job.future
        finally:
            self.pending -= 1

    async def _gather(self) -> list[Job]:
        """The first waiting job, then whatever else is queued or (while the traffic is concurrent) arrives
        before its deadline, up to max_batch."""
        loop = asyncio.get_running_loop()
        jobs = [await self.queue.get()]
        deadline = loop.time() + (self.max_wait if self.concurrent else 0.0)
        while len(jobs) < self.max_batch:
            try:
                jobs.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(self.queue.get(), left))
            except asyncio.TimeoutError:
                break
        return jobs

    async def _loop(self) -> None:
        while True:
            jobs = [j for j in await self._gather() if not j.future.done()]  # done: the client went away
            by_options = lambda j: (j.options.timestamps, str(j.options))  # noqa: E731
            for _, group in itertools.groupby(sorted(jobs, key=by_options), key=by_options):
                await self._transcribe(list(group))
            self.concurrent = len(jobs) > 1 or not self.queue.empty()

    async def _transcribe(self, jobs: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._model_thread, self.run, [j.audio for j in jobs], jobs[0].options)
        except Exception as exc:
            if len(jobs) > 1:  # one bad request must not fail its batch-mates: retry them one by one
                for job in jobs:
                    await self._transcribe([job])
            elif not jobs[0].future.done():
                jobs[0].future.set_exception(exc)
            return
        for job, result in zip(jobs, results):
            if not job.future.done():
                job.future.set_result(result)
