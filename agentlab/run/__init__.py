"""What a run carries: its context (`RunContext`, deps), typed output, the conversation and its repair; its
state from step to step with the budgets it runs under (`state`), and a step's tool calls (`tool_calls`).

The loop (agentlab/agent.py) uses these helpers; they know nothing of models, so each can be tested on its
own. Submodules load on first use so `import agentlab` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlab._lazy import lazy_exports

if TYPE_CHECKING:
    from agentlab.run.context import RunContext
    from agentlab.run.conversation import decision_exchange_messages, repair_history
    from agentlab.run.output import ModelRetry, OutputSpec, OutputValidator, run_validators

_EXPORTS = {
    "RunContext": "agentlab.run.context",
    "OutputSpec": "agentlab.run.output",
    "OutputValidator": "agentlab.run.output",
    "ModelRetry": "agentlab.run.output",
    "run_validators": "agentlab.run.output",
    "repair_history": "agentlab.run.conversation",
    "decision_exchange_messages": "agentlab.run.conversation",
}

__all__ = [
    "ModelRetry",
    "OutputSpec",
    "OutputValidator",
    "RunContext",
    "decision_exchange_messages",
    "repair_history",
    "run_validators",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
