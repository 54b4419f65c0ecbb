"""Models: one small protocol, an OpenAI-compatible client and the embedded local model.

The protocol's types load with the package; each model loads on first use, so an app that talks to an
endpoint never imports the embedded model's code (and the reverse)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlab._lazy import lazy_exports
from agentlab.models.base import (
    Capabilities,
    DecisionFormat,
    Model,
    ModelError,
    ModelRequest,
    ModelResponse,
    RawToolCall,
    ReplyDelta,
)

if TYPE_CHECKING:
    from agentlab.models.fallback import FallbackModel
    from agentlab.models.local import LocalModel, ModelUnavailable, embedded_model_path
    from agentlab.models.openai_compatible import OpenAIModel
    from agentlab.models.resolve import default_model

_EXPORTS = {
    "FallbackModel": "agentlab.models.fallback",
    "LocalModel": "agentlab.models.local",
    "ModelUnavailable": "agentlab.models.local",
    "embedded_model_path": "agentlab.models.local",
    "OpenAIModel": "agentlab.models.openai_compatible",
    "default_model": "agentlab.models.resolve",
}

__all__ = [
    "Capabilities",
    "DecisionFormat",
    "FallbackModel",
    "LocalModel",
    "Model",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelUnavailable",
    "OpenAIModel",
    "RawToolCall",
    "ReplyDelta",
    "default_model",
    "embedded_model_path",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
