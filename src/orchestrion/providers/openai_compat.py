"""OpenAI-compatible chat-completions provider.

One adapter for the OpenAI API and every server that speaks its chat-completions
dialect: vLLM, Ollama, llama.cpp ``llama-server``, a LiteLLM proxy, and hosted
look-alikes. Point ``base_url`` at the server's API root (usually ending in ``/v1``).

The ``openai`` SDK is an optional extra (``pip install 'orchestrion[openai]'``). It is
imported lazily, when a provider is constructed, so ``import orchestrion`` works
without it and a missing SDK is a :class:`~orchestrion.errors.ProviderConfigError`
with the install hint, raised while the workflow is being defined rather than in
the middle of a run.

Division of labour with the runtime: this adapter makes exactly one HTTP request per
:meth:`OpenAICompatProvider.complete` (the SDK's own retries are off by default) and
translates failures into the error tree, marking transient ones
:class:`~orchestrion.errors.ProviderUnavailable`. Retries, backoff, circuit
breaking, budgets and pricing all happen at the runtime's choke point, so a
retry is journaled, budgeted and traced like any other call.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from orchestrion.cost.usage import Usage
from orchestrion.errors import (
    MalformedOutput,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailable,
)
from orchestrion.providers.base import (
    Message,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    ToolCall,
    ToolSpec,
)

if TYPE_CHECKING:  # the SDK is an optional extra; only the type checker needs it here
    from openai import AsyncOpenAI

__all__ = [
    "DEFAULT_CONTEXT_WINDOW",
    "KNOWN_CONTEXT_WINDOWS",
    "LOCAL_DUMMY_API_KEY",
    "OPENAI_BASE_URL",
    "OpenAICompatProvider",
    "TokenLimitParam",
    "context_window_for",
]

TokenLimitParam = Literal["max_tokens", "max_completion_tokens"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""The API root used when neither ``base_url`` nor ``OPENAI_BASE_URL`` is set."""

LOCAL_DUMMY_API_KEY = "orchestrion-no-key"
"""Sent when a non-OpenAI server needs no key: the SDK refuses to run without one."""

DEFAULT_CONTEXT_WINDOW = 128_000
"""Context window assumed for a model missing from :data:`KNOWN_CONTEXT_WINDOWS`."""

KNOWN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-3.5-turbo": 16_385,
    "gpt-4": 8_192,
    "gpt-4-32k": 32_768,
    "gpt-4-turbo": 128_000,
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "gpt-5": 400_000,
    "gpt-5-mini": 400_000,
    "gpt-5-nano": 400_000,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
}
"""Context windows (tokens) of well-known models; extend it or pass ``context_window``.

Keys match exactly or as a prefix of a dated snapshot (``gpt-4o-2024-08-06``); the
longest matching key wins, so ``gpt-4o-mini-2024-07-18`` finds ``gpt-4o-mini``.
"""

# ModelSettings.extra keys this adapter consumes; every other key is sent verbatim.
_STRICT_SCHEMA_KEY = "strict_schema"
_TOKEN_LIMIT_KEY = "token_limit_param"
_RESERVED_EXTRA = frozenset({_STRICT_SCHEMA_KEY, _TOKEN_LIMIT_KEY})

# OpenAI rejects response-format names outside this pattern with a 400.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

_INSTALL_HINT = "pip install 'orchestrion[openai]'"


# --------------------------------------------------------------------------- SDK loading

# The one place the SDK is imported. Tests replace it to simulate a missing extra
# without uninstalling anything.
_import_module = importlib.import_module


def _load_sdk() -> ModuleType:
    """Import the ``openai`` SDK, or raise ProviderConfigError with the install hint."""
    try:
        return _import_module("openai")
    except ImportError as exc:
        raise ProviderConfigError(
            f"the OpenAI-compatible provider needs the 'openai' package ({exc})",
            hint=f"install the extra: {_INSTALL_HINT}",
        ) from exc


def context_window_for(model: str) -> int:
    """The context window of ``model`` from :data:`KNOWN_CONTEXT_WINDOWS`, else the default."""
    if model in KNOWN_CONTEXT_WINDOWS:
        return KNOWN_CONTEXT_WINDOWS[model]
    # Dated snapshots ("gpt-4o-2024-08-06") inherit their family's window.
    best = max(
        (key for key in KNOWN_CONTEXT_WINDOWS if model.startswith(key + "-")),
        key=len,
        default=None,
    )
    return KNOWN_CONTEXT_WINDOWS[best] if best else DEFAULT_CONTEXT_WINDOW


def _is_openai_host(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.com")


# --------------------------------------------------------------------------- provider


class OpenAICompatProvider:
    """A :class:`~orchestrion.providers.base.Provider` over OpenAI chat completions.

    Works with api.openai.com and with any OpenAI-compatible server via ``base_url``.

    Args:
        model: the model id sent to the server (``"gpt-4o-mini"``, ``"llama3.1:8b"``).
        base_url: the API root; ``None`` means ``$OPENAI_BASE_URL`` or api.openai.com.
        api_key: the bearer key; ``None`` means ``$OPENAI_API_KEY``. For servers other
            than OpenAI a placeholder key is used when none is found, since local
            servers usually need none.
        context_window: tokens; defaults from :data:`KNOWN_CONTEXT_WINDOWS`, else
            128k. Local servers often run with a smaller configured window (Ollama's
            ``num_ctx``, vLLM's ``--max-model-len``): pass the real value.
        timeout: seconds for one HTTP request. The runtime's step timeout is the real
            bound; this only stops a hung connection.
        max_retries: the SDK's own retries; keep 0 so that the runtime, which
            journals and budgets each attempt, owns retries.
        token_limit_param: which request field carries ``ModelSettings.max_tokens``.
            ``None`` picks ``max_completion_tokens`` for api.openai.com (its reasoning
            models reject ``max_tokens``) and ``max_tokens`` elsewhere (what
            compatible servers reliably understand). ``ModelSettings.extra
            ["token_limit_param"]`` overrides it per request.
        client: an ``openai.AsyncOpenAI`` to use instead of building one; its own
            base_url, key, timeout and retries then apply.

    ``ModelSettings.extra`` keys: ``strict_schema`` (bool, default False) asks for
    strict structured output; ``token_limit_param`` as above; any other key is
    merged verbatim into the request body (``top_p``, ``stop``, ``tool_choice``,
    ``reasoning_effort``, server-specific ones like vLLM's ``top_k``).
    """

    model: str
    context_window: int
    base_url: str
    """The API root requests go to, without a trailing slash."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        context_window: int | None = None,
        timeout: float = 600.0,
        max_retries: int = 0,
        token_limit_param: TokenLimitParam | None = None,
        client: AsyncOpenAI | None = None,
    ) -> None:
        if not model:
            raise ProviderConfigError(
                "OpenAICompatProvider needs a model name",
                hint="pass model='gpt-4o-mini' (or the id your server serves)",
            )
        if context_window is not None and context_window <= 0:
            raise ProviderConfigError(
                f"context_window must be a positive number of tokens, got {context_window}",
                hint="pass the model's real context window, or omit it for the default",
            )
        self._sdk = _load_sdk()
        self.model = model
        self.context_window = context_window or context_window_for(model)
        self._owns_client = client is None
        if client is not None:
            self._client = client
            self.base_url = str(client.base_url).rstrip("/")
        else:
            self.base_url = (
                base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
            ).rstrip("/")
            self._client = self._build_client(api_key, timeout, max_retries)
        if token_limit_param is None:
            token_limit_param = (
                "max_completion_tokens" if _is_openai_host(self.base_url) else "max_tokens"
            )
        self.token_limit_param: TokenLimitParam = _check_token_param(token_limit_param)

    def _build_client(self, api_key: str | None, timeout: float, max_retries: int) -> AsyncOpenAI:
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if _is_openai_host(self.base_url):
                raise ProviderConfigError(
                    f"no API key for model {self.model!r} at {self.base_url}",
                    hint="set OPENAI_API_KEY or pass api_key=...",
                )
            key = LOCAL_DUMMY_API_KEY
        try:
            client: AsyncOpenAI = self._sdk.AsyncOpenAI(
                api_key=key, base_url=self.base_url, timeout=timeout, max_retries=max_retries
            )
        except self._sdk.OpenAIError as exc:
            raise ProviderConfigError(
                f"could not configure the OpenAI client for {self.base_url}: {exc}",
                hint="check api_key and base_url",
            ) from exc
        return client

    async def aclose(self) -> None:
        """Close the HTTP connection pool if this provider built the client.

        An injected ``client`` belongs to the caller and is left open.
        """
        if self._owns_client:
            await self._client.close()

    def __repr__(self) -> str:
        # Never the key: reprs end up in logs and traces.
        return f"OpenAICompatProvider(model={self.model!r}, base_url={self.base_url!r})"

    # ----------------------------------------------------------------------- complete

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send one chat-completion request and map the reply to a :class:`ModelResponse`.

        Raises:
            ProviderUnavailable: rate limits, 5xx, 408/409, connection failures and
                timeouts; the runtime retries these.
            MalformedOutput: no choices, a non-JSON body, or tool-call arguments that
                are not a JSON object.
            ProviderError: any other refusal by the server (bad key, unknown model,
                bad request, exhausted quota), with a hint naming what to check.
        """
        params = self._request_params(request)
        try:
            completion = await self._client.chat.completions.create(**params)
        except self._sdk.OpenAIError as exc:
            raise self._map_error(exc) from exc
        return self._parse(completion)

    # ----------------------------------------------------------------------- request

    def _request_params(self, request: ModelRequest) -> dict[str, Any]:
        settings: ModelSettings = request.settings
        extra = dict(settings.extra)
        token_param = _check_token_param(extra.get(_TOKEN_LIMIT_KEY) or self.token_limit_param)
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [_message_param(m) for m in request.messages],
            token_param: settings.max_tokens,
            "stream": False,
        }
        # Unset sampling knobs are left out, not sent as null: several compatible
        # servers reject explicit nulls.
        if settings.temperature is not None:
            params["temperature"] = settings.temperature
        if settings.seed is not None:
            params["seed"] = settings.seed
        if request.tools:
            params["tools"] = [_tool_param(t) for t in request.tools]
        if request.output_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _safe_name(request.output_name),
                    "schema": dict(request.output_schema),
                    # Strict mode needs every property required and no additional
                    # properties; schemas are sent as given, so it is opt-in.
                    "strict": bool(extra.get(_STRICT_SCHEMA_KEY, False)),
                },
            }
        passthrough = {k: v for k, v in extra.items() if k not in _RESERVED_EXTRA}
        if passthrough:
            # extra_body is merged into the JSON body as-is, so server-specific keys
            # work on any SDK version without the SDK knowing about them.
            params["extra_body"] = passthrough
        return params

    # ----------------------------------------------------------------------- response

    def _parse(self, completion: Any) -> ModelResponse:
        # The SDK builds responses without validation and hands back the raw text
        # when the body is not JSON (a proxy's HTML page, a wrong base_url), so
        # nothing below trusts the shape.
        choices = getattr(completion, "choices", None)
        if not isinstance(completion, str) and choices:
            choice = choices[0]
            message = getattr(choice, "message", None)
            if message is not None:
                return self._response_from(completion, choice, message)
        if isinstance(completion, str):
            raise MalformedOutput(
                f"model {self.model!r} at {self.base_url} returned a body that is not a "
                "chat completion",
                raw=completion,
                hint="check that base_url points at an OpenAI-compatible API root (usually "
                "ending in /v1) and that the model is served there",
            )
        # Some servers report failures as a 200 with an "error" object.
        error = getattr(completion, "error", None)
        raise MalformedOutput(
            f"model {self.model!r} at {self.base_url} returned no choices"
            + (f" (error: {error})" if error else ""),
            raw=_dump(completion),
            hint="the server answered without a completion (a content filter, or an error "
            "reported with status 200): see the raw body; the runtime may re-ask",
        )

    def _response_from(self, completion: Any, choice: Any, message: Any) -> ModelResponse:
        # A structured-output refusal arrives in ``refusal`` with null content;
        # surfacing it as the text keeps the reason visible to contract repair.
        text = getattr(message, "content", None) or getattr(message, "refusal", None) or ""
        calls = tuple(
            _tool_call(raw_call, index)
            for index, raw_call in enumerate(getattr(message, "tool_calls", None) or ())
        )
        return ModelResponse(
            text=text,
            tool_calls=calls,
            usage=_usage(getattr(completion, "usage", None)),
            model=getattr(completion, "model", None) or self.model,
            finish_reason=getattr(choice, "finish_reason", None) or "stop",
        )

    # ----------------------------------------------------------------------- errors

    def _map_error(self, exc: Exception) -> ProviderError:
        sdk = self._sdk
        where = f"model {self.model!r} at {self.base_url}"
        # Order matters: APITimeoutError subclasses APIConnectionError.
        if isinstance(exc, sdk.APITimeoutError):
            return ProviderUnavailable(
                f"request to {where} timed out",
                hint="transient: the runtime retries it; raise timeout= if the model is slow",
            )
        if isinstance(exc, sdk.APIConnectionError):
            return ProviderUnavailable(
                f"could not connect to {where}: {exc}",
                hint=f"check that the server at {self.base_url} is running and reachable",
            )
        if isinstance(exc, sdk.APIResponseValidationError):
            return MalformedOutput(
                f"{where} returned a response that does not match the chat-completion schema",
                raw=_dump(getattr(exc, "body", None)),
            )
        if isinstance(exc, sdk.APIStatusError):
            return self._map_status_error(exc, where)
        return ProviderError(
            f"OpenAI SDK error for {where}: {exc}",
            hint="see the cause; report it if it persists",
        )

    def _map_status_error(self, exc: Any, where: str) -> ProviderError:
        status: int = exc.status_code
        body = exc.body if isinstance(exc.body, Mapping) else {}
        code = exc.code or ""
        detail = str(body.get("message") or exc.message)
        request_id = getattr(exc, "request_id", None)
        message = f"{where} answered HTTP {status}" + (f" ({code})" if code else "")
        message += f": {detail}" + (f" [request id {request_id}]" if request_id else "")

        # Mirror the SDK's own retry rules: the server may say so explicitly, else
        # 408, 409, 429 and 5xx are transient. An exhausted quota is a 429 that
        # no amount of retrying fixes.
        should_retry = exc.response.headers.get("x-should-retry")
        if code == "insufficient_quota" or exc.type == "insufficient_quota":
            return ProviderError(
                message,
                hint="the account is out of quota: check the plan and billing of this API "
                "key; retrying will not help",
            )
        if should_retry == "true" or (
            should_retry != "false" and (status in (408, 409, 429) or status >= 500)
        ):
            hint = (
                "rate limited: the runtime retries with backoff; lower concurrency or "
                "raise the rate limit"
                if status == 429
                else "transient server error: the runtime retries it"
            )
            return ProviderUnavailable(message, hint=hint)
        return ProviderError(message, hint=self._status_hint(status, code, exc.param))

    def _status_hint(self, status: int, code: str, param: str | None) -> str:
        if status == 401:
            return (
                f"check the API key sent to {self.base_url}: pass api_key=... or set the "
                "key variable (OPENAI_API_KEY for OpenAI), and that base_url is the "
                "server you meant"
            )
        if status == 403:
            return (
                f"the key was accepted but may not use model {self.model!r}: check the "
                "key's project/organization permissions and the base_url"
            )
        if status == 404:
            return (
                f"check the model name {self.model!r} (is it served or pulled on that "
                f"server?) and that base_url {self.base_url} is the API root, usually "
                "ending in /v1"
            )
        if code == "context_length_exceeded":
            return (
                f"the prompt does not fit the context window of {self.model!r}: trim or "
                "summarize the messages, or lower max_tokens"
            )
        if param in ("max_tokens", "max_completion_tokens") or code == "unsupported_parameter":
            return (
                "the server rejected a request parameter: for max_tokens errors set "
                "token_limit_param='max_completion_tokens' (or 'max_tokens'); otherwise "
                "drop the parameter from ModelSettings.extra"
            )
        return (
            f"check the model name {self.model!r}, the settings in ModelSettings.extra, "
            "tool names (letters, digits, _ and -) and the tool/output JSON schemas"
        )


# --------------------------------------------------------------------------- mapping helpers


def _check_token_param(value: Any) -> TokenLimitParam:
    if value in ("max_tokens", "max_completion_tokens"):
        return cast(TokenLimitParam, value)
    raise ProviderConfigError(
        f"unknown token_limit_param {value!r}",
        hint="use 'max_tokens' or 'max_completion_tokens'",
    )


def _message_param(message: Message) -> dict[str, Any]:
    """One orchestrion Message as a chat-completions message dict."""
    if message.role == "tool":
        if not message.tool_call_id:
            raise ProviderError(
                "a tool message has no tool_call_id",
                hint="set Message.tool_call_id to the id of the ToolCall it answers",
            )
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    param: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        param["tool_calls"] = [_tool_call_param(c) for c in message.tool_calls]
        # With tool calls and no text, null content is what the API itself returns
        # and what compatible servers are tested against.
        if not message.content:
            param["content"] = None
    if message.name:
        param["name"] = message.name
    return param


def _tool_call_param(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
    }


def _tool_param(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def _safe_name(name: str) -> str:
    return _NAME_UNSAFE.sub("_", name)[:64] or "output"


def _tool_call(raw: Any, index: int) -> ToolCall:
    """Parse one response tool call; arguments must be a JSON object."""
    function = getattr(raw, "function", None)
    # Some compatible servers omit ids; the tool result still needs one to refer to.
    call_id = getattr(raw, "id", None) or f"call_{index}"
    if function is None:
        kind = getattr(raw, "type", "unknown")
        raise MalformedOutput(
            f"the model made a {kind!r} tool call; only function tools are declared",
            raw=_dump(raw),
        )
    name = getattr(function, "name", None) or ""
    arguments = getattr(function, "arguments", None)
    if isinstance(arguments, Mapping):  # a few servers send an object, not a string
        return ToolCall(id=call_id, name=name, arguments=dict(arguments))
    text = arguments or ""
    try:
        parsed = json.loads(text) if text.strip() else {}
    except (json.JSONDecodeError, TypeError) as exc:
        raise MalformedOutput(
            f"tool call {name!r} ({call_id}) has arguments that are not valid JSON: {exc}",
            raw=str(text),
            hint="the model produced broken JSON for a tool call: re-ask it, simplify the "
            "tool's schema, or use a stronger model",
        ) from exc
    if not isinstance(parsed, dict):
        raise MalformedOutput(
            f"tool call {name!r} ({call_id}) has arguments that are JSON but not an object",
            raw=str(text),
            hint="tool arguments must be a JSON object matching the tool's schema",
        )
    return ToolCall(id=call_id, name=name, arguments=parsed)


def _usage(raw: Any) -> Usage:
    # Pricing (usd) is the runtime's job; some servers omit usage entirely, and the
    # request still counts.
    if raw is None:
        return Usage(requests=1)
    return Usage(
        input_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
        requests=1,
    )


def _dump(value: Any) -> str:
    """Best-effort text of an SDK object or body, for MalformedOutput.raw."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    to_json = getattr(value, "to_json", None) or getattr(value, "model_dump_json", None)
    if callable(to_json):
        try:
            return str(to_json())
        except Exception:  # only a diagnostic; never mask the real error
            pass
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)
