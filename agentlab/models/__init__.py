"""Models: one small protocol, an OpenAI-compatible client and the embedded local model."""

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
from agentlab.models.fallback import FallbackModel
from agentlab.models.local import LocalModel, ModelUnavailable, embedded_model_path
from agentlab.models.openai_compatible import OpenAIModel
from agentlab.models.resolve import default_model

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
