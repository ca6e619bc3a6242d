"""Which model strings an agent may name, and turning one into a Pydantic AI model."""

from __future__ import annotations

import os

from openai import AsyncOpenAI
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model, infer_model
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.providers import infer_provider_class
from pydantic_ai.providers.openai import OpenAIProvider

from employeevirtual.agents.offline import OFFLINE_MODEL, offline_model

__all__ = [
    "OFFLINE_MODEL",
    "ModelRegistry",
    "UnknownModelError",
    "check_model_name",
    "offline_model",
    "valid_prefixes",
]


# Prefixes we document; any other provider Pydantic AI knows is accepted too.
_DOCUMENTED = (
    "offline",
    "test",
    "openai-chat",
    "openai",
    "openai-responses",
    "anthropic",
    "google",
    "google-cloud",
    "groq",
    "mistral",
    "ollama",
    "deepseek",
    "openrouter",
    "bedrock",
)


class UnknownModelError(ValueError):
    pass


def valid_prefixes() -> tuple[str, ...]:
    return _DOCUMENTED


def check_model_name(model: str) -> None:
    """Raise UnknownModelError naming the valid prefixes when ``model`` can't be resolved."""
    if model in ("offline", "test"):
        return
    prefix, _, name = model.partition(":")
    hint = f"use 'offline' or '<provider>:<model>' with provider one of: {', '.join(_DOCUMENTED)}"
    if not name:
        raise UnknownModelError(f"model {model!r} has no provider prefix; {hint}")
    try:
        infer_provider_class(prefix)
    except ValueError:
        raise UnknownModelError(f"unknown model provider {prefix!r}; {hint}") from None
    except (ImportError, UserError) as exc:
        raise UnknownModelError(
            f"provider {prefix!r} is not installed on this server: {exc}"
        ) from None


class ModelRegistry:
    """Builds each model once; models are stateless and hold their own HTTP clients."""

    def __init__(
        self,
        *,
        openai_base_url: str | None,
        openai_api_key: str | None,
        max_retries: int = 2,
        offline_delay: float = 0.0,
    ) -> None:
        self._offline_delay = offline_delay
        self._openai_base_url = openai_base_url
        self._openai_api_key = openai_api_key
        self._max_retries = max_retries
        self._models: dict[str, Model] = {}
        self._overrides: dict[str, Model] = {}

    def override(self, model_name: str, model: Model) -> None:
        """Serve ``model`` wherever an agent names ``model_name`` (tests, benchmarks)."""
        self._overrides[model_name] = model
        self._models.pop(model_name, None)

    def get(self, model_name: str) -> Model:
        if model_name in self._overrides:
            return self._overrides[model_name]
        model = self._models.get(model_name)
        if model is None:
            model = self._models[model_name] = self._build(model_name)
        return model

    def _openai_provider(self) -> OpenAIProvider:
        """OpenAI, or any OpenAI-compatible server (Ollama, vLLM, LM Studio) at the base URL."""
        if self._openai_base_url:
            client = AsyncOpenAI(
                base_url=self._openai_base_url,
                api_key=self._openai_api_key or "not-needed",
                max_retries=self._max_retries,
            )
        else:
            if not (self._openai_api_key or os.environ.get("OPENAI_API_KEY")):
                raise UserError(
                    "no OpenAI API key is configured: set EV_OPENAI_API_KEY, or EV_OPENAI_BASE_URL "
                    "for a local OpenAI-compatible server"
                )
            client = AsyncOpenAI(api_key=self._openai_api_key, max_retries=self._max_retries)
        return OpenAIProvider(openai_client=client)

    def _build(self, model_name: str) -> Model:
        check_model_name(model_name)
        if model_name == OFFLINE_MODEL:
            return offline_model(delay=self._offline_delay)
        if model_name == "test":
            return TestModel()
        prefix, _, name = model_name.partition(":")
        if prefix == "openai-chat":
            return OpenAIChatModel(name, provider=self._openai_provider())
        if prefix in ("openai", "openai-responses"):
            return OpenAIResponsesModel(name, provider=self._openai_provider())
        return infer_model(model_name)
