"""The models agents may use and the bounds of one agent run."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from employeevirtual.settings.lists import split_list

__all__ = ["ModelSettings"]


class ModelSettings(BaseModel):
    default_model: str = "offline"
    model_providers: Annotated[list[str], NoDecode] = Field(
        default=[],
        description="providers users may name (comma-separated, e.g. offline,openai-chat,"
        "anthropic); empty: offline plus OpenAI when a key or base URL is set",
    )
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default=[], description="if set, the only model names users may give (offline always)"
    )
    openai_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible server (Ollama, vLLM, LM Studio)",
    )
    openai_api_key: SecretStr | None = None
    model_max_retries: int = Field(default=2, ge=0, le=10, description="provider SDK retries")
    agent_timeout_seconds: float = Field(default=60.0, gt=0)
    agent_context_messages: int = Field(default=20, ge=0, le=200)
    agent_max_output_tokens: int | None = Field(default=None, ge=1)
    agent_max_total_tokens: int | None = Field(
        default=200_000, ge=1, description="input + output tokens one agent run may use"
    )

    @field_validator("model_providers")
    @classmethod
    def _no_test_provider(cls, value: list[str]) -> list[str]:
        if "test" in value:
            raise ValueError("EV_MODEL_PROVIDERS: 'test' is for the test suite only")
        return value

    @field_validator("model_providers", "allowed_models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        return split_list(value, ",")
