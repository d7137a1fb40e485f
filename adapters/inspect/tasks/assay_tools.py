"""``assay_tools``: a multi-turn task with a tool in Inspect's local sandbox (8 samples, ``data/assay_tools.jsonl``).

Each sample puts an ``inventory.txt`` into the sandbox and asks how many of one fruit it lists. The conversation:
the question; an assistant turn that calls the ``bash`` tool with ``cat inventory.txt`` (scripted by the
``look_first`` solver, so the sandbox and the tool-call round trip are exercised whatever the model's skill); the
tool's output; then the model's own turns, with ``bash`` still available, until it answers (``message_limit`` bounds
them). Scored by ``includes`` on the number. Metrics: ``accuracy`` with ``stderr``.
"""

from __future__ import annotations

from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.model import ChatMessageAssistant, GenerateConfig, execute_tools
from inspect_ai.scorer import includes
from inspect_ai.solver import Generate, Solver, TaskState, generate, solver, system_message, use_tools
from inspect_ai.tool import ToolCall, bash

DATA = Path(__file__).resolve().parent / "data" / "assay_tools.jsonl"

SYSTEM = (
    "You can run shell commands with the bash tool. Read the files you are asked about, then answer with the "
    "number only."
)


@solver  # type: ignore[untyped-decorator, unused-ignore]
def look_first() -> Solver:
    """An assistant turn that reads the sample's file with the bash tool, and the tool's answer."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        name = str(state.metadata.get("file", "inventory.txt"))
        call = ToolCall(id="assay-look-1", function="bash", arguments={"command": f"cat {name}"})
        state.messages.append(ChatMessageAssistant(content=f"Let me read {name}.", tool_calls=[call]))
        executed = await execute_tools(state.messages, state.tools)
        for message in executed.messages:
            error = getattr(message, "error", None)
            if error is not None:  # the scripted call must work: a failure here is the sample's error
                raise RuntimeError(f"the bash tool failed in the sandbox: {error.message}")
        state.messages.extend(executed.messages)
        return state

    return solve


@task  # type: ignore[untyped-decorator, unused-ignore]
def assay_tools() -> Task:
    return Task(
        dataset=json_dataset(str(DATA)),
        solver=[system_message(SYSTEM), use_tools(bash(timeout=30)), look_first(), generate()],
        scorer=includes(),
        sandbox="local",
        message_limit=8,
        config=GenerateConfig(max_tokens=24, temperature=0.0),
        version=1,
    )
