"""Run one lm-evaluation-harness evaluation for a :class:`HarnessPlan`: find the tasks, build the
OpenAI-compatible LM client, call ``lm_eval.simple_evaluate`` once for every task of the group, and write the
raw results and per-sample logs.

lm-eval is imported here only (it lives in the adapter's own environment, not the hub's). Task lookup first
indexes only the bundled and user task directories (under a second); lm-eval's ~10,000 built-in task YAMLs are
indexed (tens of seconds) only when a requested name is not found there.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.lm_eval.config import HarnessPlan, MemberPlan
from adapters.lm_eval.progress import RequestCounter

__all__ = ["LoadedTasks", "UnknownTask", "evaluate", "load_tasks", "quiet_environment", "write_outputs"]

logger = logging.getLogger("adapters.lm_eval")


class UnknownTask(LookupError):
    """A benchmark names an lm-eval task that is in none of the task directories."""

    def __init__(self, member: MemberPlan, searched: Sequence[Path]) -> None:
        where = ", ".join(str(p) for p in searched)
        super().__init__(
            f"lm-eval task {member.task!r} (benchmark {member.benchmark_id!r}) is not defined: not in {where} "
            "nor among lm-eval's built-in tasks"
        )
        self.member = member


def quiet_environment() -> None:
    """No telemetry, no tokenizer thread pools. Hub access is the runtime's choice: the local runtime sets
    ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` (the bundled tasks need no hub), a cluster image may leave them
    unset so lm-eval's own tasks can fetch their datasets."""
    for name, value in {
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(name, value)


@dataclass
class LoadedTasks:
    """The tasks of the plan's known members, ready for ``simple_evaluate``."""

    task_manager: Any
    objects: list[Any]  # lm-eval Task or Group, one per member
    routes: dict[str, int]  # leaf task name -> benchmark index
    samples: dict[str, list[int]]  # leaf task name -> doc indices, for members with num_examples
    members: list[MemberPlan]
    unknown: list[UnknownTask] = field(default_factory=list)


def _leaves(obj: Any) -> list[Any]:
    return list(obj.get_all_tasks()) if hasattr(obj, "get_all_tasks") else [obj]


def load_tasks(plan: HarnessPlan) -> LoadedTasks:
    """Find every member's task; members whose task exists nowhere are returned in ``unknown``."""
    from lm_eval.tasks import TaskManager  # type: ignore[import-not-found, unused-ignore]

    paths = [str(p) for p in plan.include_paths]
    manager = TaskManager(include_path=paths, include_defaults=False)
    if any(m.task not in manager.all_tasks for m in plan.members):
        logger.info("indexing lm-eval's built-in tasks for %s", [m.task for m in plan.members])
        manager = TaskManager(include_path=paths, include_defaults=True)
    loaded = LoadedTasks(task_manager=manager, objects=[], routes={}, samples={}, members=[])
    for member in plan.members:
        if member.task not in manager.all_tasks:
            loaded.unknown.append(UnknownTask(member, plan.include_paths))
            continue
        built = manager.load([member.task])
        obj = built.get("groups", {}).get(member.task) or built["tasks"].get(member.task)
        if obj is None:  # a tag: several tasks under one name, and no group to report their aggregate
            raise ValueError(
                f"lm-eval name {member.task!r} (benchmark {member.benchmark_id!r}) is a tag, not a task or group: "
                f"name one of its tasks ({', '.join(sorted(built['tasks']))}) or a group"
            )
        for leaf in _leaves(obj):
            name = str(leaf.task_name)
            if name in loaded.routes:
                raise ValueError(
                    f"lm-eval task {name!r} is part of two benchmarks of this job; one run evaluates it once"
                )
            loaded.routes[name] = member.benchmark_index
            if member.num_fewshot is not None:
                leaf.set_config(key="num_fewshot", value=member.num_fewshot)
            if member.limit is not None:
                # lm-eval's `limit` is one number for all tasks; `samples` picks documents per task (the
                # first `limit`, as --limit does).
                loaded.samples[name] = list(range(min(member.limit, len(leaf.eval_docs))))
        loaded.objects.append(obj)
        loaded.members.append(member)
    return loaded


def _client_class(chat: bool, counter: RequestCounter, api_key: str) -> type[Any]:
    from lm_eval.models.openai_completions import (  # type: ignore[import-not-found, unused-ignore]
        LocalChatCompletion,
        LocalCompletionsAPI,
    )

    base: type[Any] = LocalChatCompletion if chat else LocalCompletionsAPI

    class CountingClient(base):  # type: ignore[misc, valid-type, unused-ignore]
        """lm-eval's OpenAI-compatible client, counting requests for progress reports."""

        @property
        def api_key(self) -> str:
            # lm-eval reads OPENAI_API_KEY; the job's model credentials win.
            return api_key

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
            counter.expect(requests)
            return super().generate_until(requests, disable_tqdm=disable_tqdm)

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
            counter.expect(requests)
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> Any:
            counter.expect(requests)
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)

        def model_call(self, messages: Sequence[Any], **kwargs: Any) -> Any:
            answer = super().model_call(messages, **kwargs)
            if answer is not None:
                counter.answered(messages)
            return answer

        async def amodel_call(self, session: Any, sem: Any, messages: Sequence[Any], **kwargs: Any) -> Any:
            answer = await super().amodel_call(session, sem, messages, **kwargs)
            counter.answered(messages)
            return answer

    return CountingClient


def evaluate(
    plan: HarnessPlan, loaded: LoadedTasks, counter: RequestCounter, *, api_key: str
) -> dict[str, Any]:
    """The ONE ``simple_evaluate`` call for every loaded task; returns lm-eval's results dictionary."""
    import lm_eval  # type: ignore[import-not-found, unused-ignore]

    client_args: dict[str, Any] = {
        "model": plan.model_name,
        "base_url": plan.endpoint,
        # No tokenizer: prompts go to the server as text, generation tasks need nothing else (log-likelihood
        # tasks would need the model's tokenizer to split context from continuation).
        "tokenizer_backend": None,
        "tokenized_requests": False,
        "num_concurrent": plan.num_concurrent,
        "max_retries": plan.max_retries,
        "timeout": plan.request_timeout,
    }
    if plan.max_gen_toks is not None:
        client_args["max_gen_toks"] = plan.max_gen_toks
    client = _client_class(plan.chat, counter, api_key)(**client_args)
    raw = lm_eval.simple_evaluate(
        model=client,
        tasks=loaded.objects,
        task_manager=loaded.task_manager,
        samples=loaded.samples or None,
        log_samples=True,
        apply_chat_template=plan.chat,
        fewshot_as_multiturn=plan.chat,
    )
    if not isinstance(raw, dict):
        raise RuntimeError("lm-eval returned no results (simple_evaluate gave None)")
    return raw


def _as_logged(sample: dict[str, Any], sanitize: Callable[[Any], Any]) -> dict[str, Any]:
    """A sample in the shape lm-eval's own ``--log_samples`` files have (its EvaluationTracker's conversion):
    arguments as ``{"gen_args_<i>": {"arg_<j>": ...}}``, responses sanitised, the target as a string."""
    logged = dict(sample)
    logged["arguments"] = {
        f"gen_args_{i}": {f"arg_{j}": value for j, value in enumerate(argument)}
        for i, argument in enumerate(sample.get("arguments", []))
    }
    logged["resps"] = sanitize(sample.get("resps", []))
    logged["filtered_resps"] = sanitize(sample.get("filtered_resps", []))
    logged["target"] = str(sample.get("target"))
    return logged


def write_outputs(raw: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write lm-eval's results (without samples) as ``lm_eval_results.json`` and each task's per-sample log as
    ``samples_<task>.jsonl``, in the formats the ``lm_eval`` CLI writes; returns ``{artifact name: path}``
    (``lm_eval_results``, ``samples_<task>``)."""
    from lm_eval.utils import (  # type: ignore[import-not-found, unused-ignore]
        handle_non_serializable,
        sanitize_list,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    summary = {key: value for key, value in raw.items() if key != "samples"}
    results_path = out_dir / "lm_eval_results.json"
    results_path.write_text(
        json.dumps(summary, indent=2, default=handle_non_serializable, ensure_ascii=False), encoding="utf-8"
    )
    written["lm_eval_results"] = results_path
    for task, samples in sorted((raw.get("samples") or {}).items()):
        path = out_dir / f"samples_{task}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for sample in samples:
                logged = _as_logged(sample, sanitize_list)
                out.write(json.dumps(logged, default=handle_non_serializable, ensure_ascii=False) + "\n")
        written[f"samples_{task}"] = path
    return written
