"""Real progress of a harness run: count the model requests lm-eval hands to the LM and the answers that come
back, per task, and report them per benchmark every couple of seconds.

lm-eval shows progress only as a tqdm bar. The adapter builds the LM instance itself, so it wraps the LM's
request methods: ``generate_until`` / ``loglikelihood*`` announce every request (each carries its task name),
``model_call`` / ``amodel_call`` return answered ones (matched back to their task by their prompt). Reports go
out from a background thread so that a slow callback never holds up the model requests.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.sdk import JobCallbacks
from adapters.sdk.progress import DEFAULT_INTERVAL_SECONDS, PeriodicReporter, steps_done

__all__ = ["DEFAULT_INTERVAL_SECONDS", "ProgressReporter", "RequestCounter"]


def _prompt_key(message: Any) -> str:
    # Completions get the prompt string; chat gets lm-eval's JsonChatStr (a NamedTuple with .prompt).
    prompt = getattr(message, "prompt", message)
    return prompt if isinstance(prompt, str) else repr(prompt)


class RequestCounter:
    """Requests announced and answered, per lm-eval task; safe to use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total: Counter[str] = Counter()
        self._done: Counter[str] = Counter()
        self._waiting: defaultdict[str, list[str]] = defaultdict(list)
        self._unmatched = 0

    def expect(self, requests: Iterable[Any]) -> None:
        """Announce lm-eval ``Instance`` objects about to be sent (``task_name``, ``args[0]`` the prompt)."""
        with self._lock:
            for request in requests:
                task = str(request.task_name)
                self._total[task] += 1
                self._waiting[_prompt_key(request.args[0])].append(task)

    def answered(self, messages: Sequence[Any]) -> None:
        """Record the prompts of a request (a batch of one or more) that got its answer."""
        with self._lock:
            for message in messages:
                tasks = self._waiting.get(_prompt_key(message))
                if tasks:
                    self._done[tasks.pop()] += 1
                else:
                    self._unmatched += 1  # e.g. token-id prompts: counted for the run, not for a task

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """``{task: (answered, announced)}``."""
        with self._lock:
            return {task: (min(self._done[task], total), total) for task, total in self._total.items()}


class ProgressReporter(PeriodicReporter):
    """Sends ``running/running_evaluation`` with ``progress`` and step counts for each benchmark whose counts
    changed, at most every ``interval`` seconds, until stopped.

    ``routes`` maps each lm-eval (leaf) task to the benchmark index it belongs to (a group benchmark has many
    leaves); ``callbacks`` maps each benchmark index to the callbacks that report for it. A delivery failure
    stops the reporting and is raised by :meth:`stop`, never dropped.
    """

    def __init__(
        self,
        counter: RequestCounter,
        routes: Mapping[str, int],
        callbacks: Mapping[int, JobCallbacks],
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(name="lm-eval-progress", interval=interval)
        self._counter = counter
        self._routes = dict(routes)
        self._callbacks = dict(callbacks)
        self._sent: dict[int, tuple[int, int]] = {}

    def per_benchmark(self) -> dict[int, tuple[int, int]]:
        """``{benchmark_index: (answered, announced)}`` summed over each benchmark's tasks."""
        totals: dict[int, tuple[int, int]] = {}
        for task, (done, total) in self._counter.snapshot().items():
            index = self._routes.get(task)
            if index is None:
                continue
            before = totals.get(index, (0, 0))
            totals[index] = (before[0] + done, before[1] + total)
        return totals

    def flush(self) -> None:
        """Send the counts of every benchmark whose counts changed since the last report."""
        for index, (done, total) in sorted(self.per_benchmark().items()):
            if total == 0 or self._sent.get(index) == (done, total):
                continue
            self._callbacks[index].report_status(
                steps_done(done, total, f"{done}/{total} model requests answered")
            )
            self._sent[index] = (done, total)
