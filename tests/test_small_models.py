"""The small-model options on the real embedded model (SmolLM2-135M): budgeted grammars, typed numeric
answers, demonstrations and grounded answers. The model is weak, so these assert the mechanics (JSON that
closes, numbers that parse, what reaches the prompt), not that the answers are right."""

from __future__ import annotations

import asyncio
import json

import pytest

from agentlab.decisions import decision_schema
from agentlab.models.base import ModelRequest
from agentlab.tools import ToolRegistry, calculator

pytestmark = pytest.mark.integration


def test_a_reply_cut_short_by_a_tiny_token_limit_still_closes_its_json(local_model):
    request = ModelRequest(
        messages=[{"role": "user", "content": "Explain at length how to compute (37 - 112) * 6 + 15."}],
        response_schema=decision_schema(ToolRegistry([calculator])),
        max_tokens=8,
    )
    reply = asyncio.run(local_model.complete(request))
    decision = json.loads(reply.content)  # would raise on JSON cut off inside the structure
    assert decision["action"]["name"] in ("calculator", "final_answer")
    assert "{" not in decision["thought"] and "\n" not in decision["thought"]
