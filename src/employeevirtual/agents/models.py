"""Which model strings an agent may name, and turning one into a Pydantic AI model."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model, infer_model
from pydantic_ai.providers import infer_provider_class

from employeevirtual.agents.offline import OFFLINE_MODEL, offline_model

if TYPE_CHECKING:
    from pydantic_ai.providers.openai import OpenAIProvider

__all__ = [
    "OFFLINE_MODEL",
    "ModelNotAllowed",
    "ModelRegistry",
    "UnknownModelError",
    "check_model_name",
    "default_providers",
    "offline_model",
    "valid_prefixes",
]


# Prefixes we document; any other provider Pydantic AI knows is accepted too.
_DOCUMENTED = (
    "offline",
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
    if model == OFFLINE_MODEL:
        return
    prefix, _, name = model.partition(":")
    hint = f"use 'offline' or '<provider>:<model>' with provider one of: {', '.join(_DOCUMENTED)}"
    if not name:
        raise UnknownModelError(f"model {model!r} has no provider prefix; {hint}")
    try:
        infer_provider_class(prefix)
    except ValueError:
        raise UnknownModelError(f"unknown model provider {prefix!r}; {hint}") from None
    except (ImportError, UserError):
        # which package is missing is for the server's operator, not for the caller
        raise UnknownModelError(f"provider {prefix!r} is not available on this server") from None


OPENAI_PROVIDERS = ("openai-chat", "openai", "openai-responses")


class ModelNotAllowed(UnknownModelError):
    """A model this server does not offer (the operator's EV_MODEL_PROVIDERS/EV_ALLOWED_MODELS)."""


def default_providers(*, openai_configured: bool) -> frozenset[str]:
    """The offline model, plus OpenAI when a key or a base URL is configured."""
    return frozenset({OFFLINE_MODEL, *(OPENAI_PROVIDERS if openai_configured else ())})


class ModelRegistry:
    """Builds each model once; models are stateless and hold their own HTTP clients.

    Users may name only the providers the operator allows (``providers``; by default the
    offline model and the providers configured with a key or base URL) and, when ``models`` is
    given, only those model names. ``test`` is never offered: the test suite serves its models
    through :meth:`override`, and an overridden name is allowed as such."""

    def __init__(
        self,
        *,
        openai_base_url: str | None,
        openai_api_key: str | None,
        max_retries: int = 2,
        offline_delay: float = 0.0,
        providers: frozenset[str] | None = None,
        models: frozenset[str] | None = None,
    ) -> None:
        self.providers = providers or default_providers(
            openai_configured=bool(openai_base_url or openai_api_key)
        )
        self.models = models
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

    def check(self, model_name: str) -> None:
        """UnknownModelError (ModelNotAllowed for policy) saying what may be named instead."""
        if model_name in self._overrides:
            return
        if model_name == OFFLINE_MODEL:
            return
        offered = ", ".join(sorted(self.providers))
        if model_name == "test":
            raise ModelNotAllowed(
                f"model 'test' is not offered; providers on this server: {offered}"
            )
        prefix, colon, _ = model_name.partition(":")
        if not colon:
            raise UnknownModelError(
                f"model {model_name!r} has no provider prefix; use 'offline' or "
                f"'<provider>:<model>' with provider one of: {offered}"
            )
        if prefix not in self.providers:  # first: no probing which packages are installed
            raise ModelNotAllowed(
                f"provider {prefix!r} is not offered on this server; use one of: {offered} "
                "(an administrator chooses them with EV_MODEL_PROVIDERS)"
            )
        check_model_name(model_name)
        if (
            self.models is not None
            and model_name not in self.models
            and model_name != OFFLINE_MODEL
        ):
            raise ModelNotAllowed(
                f"model {model_name!r} is not offered on this server; use one of: "
                f"{', '.join(sorted(self.models | {OFFLINE_MODEL}))}"
            )

    def get(self, model_name: str) -> Model:
        if model_name in self._overrides:
            return self._overrides[model_name]
        self.check(model_name)  # also for agents saved before the operator narrowed the list
        model = self._models.get(model_name)
        if model is None:
            model = self._models[model_name] = self._build(model_name)
        return model

    def _openai_provider(self) -> OpenAIProvider:
        """OpenAI, or any OpenAI-compatible server (Ollama, vLLM, LM Studio) at the base URL.

        The ``openai`` package is imported here, on first use, not when the server starts: it
        is ≈ 0.7 s of import that a server on the offline model never needs."""
        from openai import AsyncOpenAI
        from pydantic_ai.providers.openai import OpenAIProvider

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
        prefix, _, name = model_name.partition(":")
        if prefix in OPENAI_PROVIDERS:
            from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
        if prefix == "openai-chat":
            return OpenAIChatModel(name, provider=self._openai_provider())
        if prefix in ("openai", "openai-responses"):
            return OpenAIResponsesModel(name, provider=self._openai_provider())
        return infer_model(model_name)
