"""OpenAICompatProvider and resolve_provider against a real loopback HTTP server.

Nothing under test is mocked: the real ``openai`` SDK sends real HTTP requests to a
stdlib server on 127.0.0.1 that replays recorded chat-completion bodies (and error
bodies) from ``recordings/`` and captures what it received. No other network.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrion.cost.usage import Usage
from orchestrion.errors import (
    MalformedOutput,
    ProviderConfigError,
    ProviderError,
    ProviderUnavailable,
)
from orchestrion.providers import openai_compat, resolve
from orchestrion.providers.base import (
    Message,
    ModelRequest,
    ModelSettings,
    Provider,
    ToolCall,
    ToolSpec,
)
from orchestrion.providers.openai_compat import (
    LOCAL_DUMMY_API_KEY,
    OPENAI_BASE_URL,
    OpenAICompatProvider,
    context_window_for,
)
from orchestrion.providers.resolve import known_prefixes, register_provider, resolve_provider

RECORDINGS = Path(__file__).parent / "recordings"
TEST_KEY = "sk-test-loopback"


# --------------------------------------------------------------------------- loopback server


@dataclass
class Reply:
    """One scripted HTTP answer."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    delay: float = 0.0


@dataclass
class Captured:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


def recording(name: str) -> dict[str, Any]:
    """A recording file: ``{"status", "headers", "body", ...}``."""
    data: dict[str, Any] = json.loads((RECORDINGS / f"{name}.json").read_text())
    return data


def recorded_reply(name: str) -> Reply:
    data = recording(name)
    return Reply(data["status"], data["body"], dict(data["headers"]))


class FakeOpenAIServer:
    """A stdlib HTTP server that answers queued replies in order and records requests."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Captured] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.requests.append(
                    Captured(
                        "POST",
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None,
                    )
                )
                reply = owner.replies.popleft() if owner.replies else owner.unscripted()
                if reply.delay:
                    time.sleep(reply.delay)
                payload = (
                    reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                ).encode()
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        # A short poll interval keeps shutdown (once per test) from costing 0.5 s.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @staticmethod
    def unscripted() -> Reply:
        return Reply(
            500,
            {"error": {"message": "test server: no reply queued", "type": "test", "code": None}},
            {"content-type": "application/json", "x-should-retry": "false"},
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def queue(self, *replies: Reply | str) -> None:
        for reply in replies:
            self.replies.append(recorded_reply(reply) if isinstance(reply, str) else reply)

    @property
    def last_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.requests[-1].body
        return body


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's environment (keys, base URLs, proxies) out of the tests."""
    for var in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_CUSTOM_HEADERS",
        "OPENAI_ADMIN_KEY",
        "OLLAMA_BASE_URL",
        "OLLAMA_API_KEY",
        "VLLM_BASE_URL",
        "VLLM_API_KEY",
        "LLAMACPP_BASE_URL",
        "LLAMACPP_API_KEY",
        "LITELLM_BASE_URL",
        "LITELLM_API_KEY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


@pytest.fixture
def provider(server: FakeOpenAIServer) -> OpenAICompatProvider:
    return OpenAICompatProvider(model="gpt-4o-mini", base_url=server.url, api_key=TEST_KEY)


def ask(text: str, **kwargs: Any) -> ModelRequest:
    return ModelRequest(messages=[Message("user", text)], **kwargs)


WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
)


# --------------------------------------------------------------------------- completions


async def test_plain_text_completion(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("text_completion")
    request = ModelRequest(
        messages=[
            Message("system", "Answer in one sentence."),
            Message("user", "What is the capital of France?"),
        ],
        settings=ModelSettings(max_tokens=64, temperature=0.2, seed=7),
    )

    response = await provider.complete(request)

    assert response.text == "The capital of France is Paris."
    assert response.tool_calls == ()
    assert response.finish_reason == "stop"
    assert response.model == "gpt-4o-mini-2024-07-18"  # the snapshot the server reports
    sent = server.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "max_tokens": 64,  # a non-OpenAI base_url gets the widely supported field
        "temperature": 0.2,
        "seed": 7,
        "stream": False,
    }
    await provider.aclose()


async def test_unset_sampling_settings_are_omitted_not_null(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("text_completion")
    await provider.complete(ask("hi"))
    body = server.last_body
    assert "temperature" not in body
    assert "seed" not in body
    assert "tools" not in body
    assert "response_format" not in body
    assert body["max_tokens"] == ModelSettings().max_tokens


async def test_usage_is_mapped_and_left_unpriced(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("text_completion")
    response = await provider.complete(ask("What is the capital of France?"))
    assert response.usage == Usage(input_tokens=24, output_tokens=8, requests=1, usd=0.0)


async def test_missing_usage_still_counts_the_request(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    body = recording("ollama_text")["body"]
    del body["usage"]  # llama.cpp and some proxies omit it
    server.queue(Reply(200, body))
    response = await provider.complete(ask("hi"))
    assert response.usage == Usage(requests=1)


async def test_structured_output_request_shape(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "findings": {"type": "array", "items": {"type": "string"}},
            "confidence": {"type": "number"},
        },
        "required": ["title", "findings", "confidence"],
    }
    server.queue("structured_output", "structured_output")

    response = await provider.complete(
        ask("Summarize the paper.", output_schema=schema, output_name="Research Report")
    )
    assert json.loads(response.text)["confidence"] == 0.72
    assert server.last_body["response_format"] == {
        "type": "json_schema",
        # OpenAI only accepts [A-Za-z0-9_-]{1,64} here.
        "json_schema": {"name": "Research_Report", "schema": schema, "strict": False},
    }

    strict = ModelSettings(extra={"strict_schema": True, "top_p": 0.9, "top_k": 40})
    await provider.complete(ask("again", output_schema=schema, settings=strict))
    body = server.last_body
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["name"] == "output"
    # Other extra keys are passed through verbatim; the adapter's own are consumed.
    assert body["top_p"] == 0.9
    assert body["top_k"] == 40
    assert "strict_schema" not in body


async def test_token_limit_field_is_configurable(server: FakeOpenAIServer) -> None:
    server.queue("text_completion", "text_completion")
    provider = OpenAICompatProvider(
        model="o4-mini",
        base_url=server.url,
        api_key=TEST_KEY,
        token_limit_param="max_completion_tokens",
    )
    await provider.complete(ask("hi", settings=ModelSettings(max_tokens=200)))
    assert server.last_body["max_completion_tokens"] == 200
    assert "max_tokens" not in server.last_body

    per_request = ModelSettings(max_tokens=50, extra={"token_limit_param": "max_tokens"})
    await provider.complete(ask("hi", settings=per_request))
    assert server.last_body["max_tokens"] == 50
    assert "max_completion_tokens" not in server.last_body
    assert "token_limit_param" not in server.last_body


def test_openai_host_defaults_to_max_completion_tokens() -> None:
    provider = OpenAICompatProvider(
        model="gpt-4o", base_url=OPENAI_BASE_URL, api_key=TEST_KEY
    )
    assert provider.token_limit_param == "max_completion_tokens"
    with pytest.raises(ProviderConfigError, match="token_limit_param"):
        OpenAICompatProvider(model="gpt-4o", api_key=TEST_KEY, token_limit_param="max_len")  # type: ignore[arg-type]


async def test_tool_calls_round_trip(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("tool_calls")

    response = await provider.complete(ask("Weather in Paris and Tokyo?", tools=[WEATHER_TOOL]))

    assert server.last_body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": dict(WEATHER_TOOL.parameters),
            },
        }
    ]
    assert response.text == ""  # content was null
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == (
        ToolCall(
            "call_Q9fX3nV7bK2mL8pR4sT6wY1z", "get_weather", {"city": "Paris", "unit": "celsius"}
        ),
        ToolCall(
            "call_H4jD8kP2nR6tV0xZ3cB7mQ5w", "get_weather", {"city": "Tokyo", "unit": "celsius"}
        ),
    )
    assert response.usage == Usage(input_tokens=92, output_tokens=52, requests=1)


async def test_multi_turn_with_tool_results_is_serialized(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("tool_calls", "answer_after_tools")
    first = await provider.complete(ask("Weather in Paris and Tokyo?", tools=[WEATHER_TOOL]))
    paris, tokyo = first.tool_calls

    history = [
        Message("system", "You are a weather assistant."),
        Message("user", "Weather in Paris and Tokyo?"),
        Message("assistant", first.text, tool_calls=first.tool_calls),
        Message("tool", '{"temp_c": 18, "sky": "cloudy"}', tool_call_id=paris.id),
        Message("tool", '{"temp_c": 24, "sky": "sunny"}', tool_call_id=tokyo.id),
    ]
    second = await provider.complete(ModelRequest(messages=history, tools=[WEATHER_TOOL]))

    assert second.text.startswith("Paris is 18")
    assert second.usage == Usage(input_tokens=171, output_tokens=19, requests=1)
    messages = server.last_body["messages"]
    assert messages[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_Q9fX3nV7bK2mL8pR4sT6wY1z",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(dict(paris.arguments))},
            },
            {
                "id": "call_H4jD8kP2nR6tV0xZ3cB7mQ5w",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps(dict(tokyo.arguments))},
            },
        ],
    }
    # Arguments go back as JSON text that parses to what the model sent.
    assert json.loads(messages[2]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Paris",
        "unit": "celsius",
    }
    assert messages[3] == {
        "role": "tool",
        "tool_call_id": "call_Q9fX3nV7bK2mL8pR4sT6wY1z",
        "content": '{"temp_c": 18, "sky": "cloudy"}',
    }
    assert messages[4]["tool_call_id"] == "call_H4jD8kP2nR6tV0xZ3cB7mQ5w"
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool"]


async def test_assistant_text_and_name_are_kept(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("text_completion")
    call = ToolCall("call_1", "get_weather", {"city": "Oslo"})
    await provider.complete(
        ModelRequest(
            messages=[
                Message("user", "hi", name="alice"),
                Message("assistant", "Let me check.", tool_calls=(call,)),
                Message("tool", "{}", tool_call_id="call_1"),
            ]
        )
    )
    user, assistant, _ = server.last_body["messages"]
    assert user == {"role": "user", "content": "hi", "name": "alice"}
    assert assistant["content"] == "Let me check."


async def test_tool_message_without_id_is_rejected_before_sending(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    with pytest.raises(ProviderError, match="tool_call_id"):
        await provider.complete(ModelRequest(messages=[Message("tool", "{}")]))
    assert server.requests == []


# --------------------------------------------------------------------------- malformed output


async def test_malformed_tool_arguments(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("tool_calls_malformed_arguments")
    with pytest.raises(MalformedOutput) as info:
        await provider.complete(ask("Weather in Paris?", tools=[WEATHER_TOOL]))
    err = info.value
    assert not err.retryable
    assert err.raw == '{"city":"Par'  # the raw text, for repair and debugging
    assert "get_weather" in str(err)
    assert "call_T1uV2wX3yZ4aB5cD6eF7gH8i" in str(err)


async def test_tool_arguments_must_be_a_json_object(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    body = recording("tool_calls")["body"]
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '["Paris"]'
    server.queue(Reply(200, body))
    with pytest.raises(MalformedOutput, match="not an object") as info:
        await provider.complete(ask("Weather?", tools=[WEATHER_TOOL]))
    assert info.value.raw == '["Paris"]'


async def test_empty_tool_arguments_mean_no_arguments(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    body = recording("tool_calls")["body"]
    body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = ""
    server.queue(Reply(200, body))
    response = await provider.complete(ask("Weather?", tools=[WEATHER_TOOL]))
    assert response.tool_calls[0].arguments == {}


async def test_empty_choices_is_malformed_output(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("empty_choices")
    with pytest.raises(MalformedOutput, match="no choices") as info:
        await provider.complete(ask("hi"))
    assert "chatcmpl-BK31Aa1Bb2Cc3Dd4Ee5Ff6Gg7Hh8" in info.value.raw


async def test_error_object_with_status_200_is_malformed_output(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    # Some proxies report upstream failures this way.
    server.queue(Reply(200, {"error": {"message": "upstream model crashed", "code": 502}}))
    with pytest.raises(MalformedOutput, match="upstream model crashed"):
        await provider.complete(ask("hi"))


async def test_non_json_body_is_malformed_output_with_base_url_hint(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    # What a wrong base_url typically yields: some web page with status 200.
    server.queue(Reply(200, "<html><body>Welcome</body></html>", {"content-type": "text/html"}))
    with pytest.raises(MalformedOutput) as info:
        await provider.complete(ask("hi"))
    assert "base_url" in info.value.hint
    assert "Welcome" in info.value.raw


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name",
    ["error_429_rate_limit", "error_500_server_error"],
)
async def test_transient_errors_are_provider_unavailable_and_not_retried_by_the_sdk(
    server: FakeOpenAIServer, provider: OpenAICompatProvider, name: str
) -> None:
    server.queue(name, "text_completion")  # an SDK retry would get this and succeed
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(ask("hi"))
    err = info.value
    assert err.retryable
    status = recording(name)["status"]
    assert f"HTTP {status}" in str(err)
    assert recording(name)["headers"]["x-request-id"] in str(err)
    assert len(server.requests) == 1  # retries belong to the runtime


async def test_server_can_veto_a_retry(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    reply = recorded_reply("error_500_server_error")
    reply.headers["x-should-retry"] = "false"
    server.queue(reply)
    with pytest.raises(ProviderError) as info:
        await provider.complete(ask("hi"))
    assert not isinstance(info.value, ProviderUnavailable)


async def test_exhausted_quota_is_not_retryable(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("error_429_insufficient_quota")
    with pytest.raises(ProviderError) as info:
        await provider.complete(ask("hi"))
    assert not isinstance(info.value, ProviderUnavailable)
    assert "quota" in info.value.hint


@pytest.mark.parametrize(
    ("name", "hint_words"),
    [
        ("error_401_invalid_api_key", ["API key", "OPENAI_API_KEY", "base_url"]),
        ("error_403_model_access", ["gpt-4o-mini", "permissions"]),
        ("error_404_model_not_found", ["model name", "/v1"]),
        ("error_400_context_length", ["context window"]),
        ("error_400_unsupported_max_tokens", ["token_limit_param='max_completion_tokens'"]),
    ],
)
async def test_client_errors_are_provider_errors_with_a_hint(
    server: FakeOpenAIServer, provider: OpenAICompatProvider, name: str, hint_words: list[str]
) -> None:
    server.queue(name)
    with pytest.raises(ProviderError) as info:
        await provider.complete(ask("hi"))
    err = info.value
    assert not isinstance(err, ProviderUnavailable)
    assert not err.retryable
    for word in hint_words:
        assert word in err.hint
    # The server's own explanation is kept in the message.
    assert recording(name)["body"]["error"]["message"][:40] in str(err)


async def test_unauthorized_key_is_not_echoed(
    server: FakeOpenAIServer, provider: OpenAICompatProvider
) -> None:
    server.queue("error_401_invalid_api_key")
    with pytest.raises(ProviderError) as info:
        await provider.complete(ask("hi"))
    assert TEST_KEY not in str(info.value)
    assert TEST_KEY not in repr(provider)


async def test_connection_refused_is_provider_unavailable() -> None:
    with socket.socket() as sock:  # reserve a loopback port, then free it: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAICompatProvider(
        model="llama3.1:8b", base_url=f"http://127.0.0.1:{port}/v1", api_key=TEST_KEY
    )
    with pytest.raises(ProviderUnavailable) as info:
        await provider.complete(ask("hi"))
    assert f"127.0.0.1:{port}" in info.value.hint


async def test_timeout_is_provider_unavailable(server: FakeOpenAIServer) -> None:
    reply = recorded_reply("text_completion")
    reply.delay = 1.0
    server.queue(reply)
    provider = OpenAICompatProvider(
        model="gpt-4o-mini", base_url=server.url, api_key=TEST_KEY, timeout=0.2
    )
    with pytest.raises(ProviderUnavailable, match="timed out"):
        await provider.complete(ask("hi"))


# --------------------------------------------------------------------------- construction


def test_is_a_provider_with_a_context_window(provider: OpenAICompatProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.model == "gpt-4o-mini"
    assert provider.context_window == 128_000


def test_context_window_table() -> None:
    assert context_window_for("gpt-4.1-mini-2025-04-14") == 1_047_576
    assert context_window_for("gpt-4o-mini-2024-07-18") == 128_000
    assert context_window_for("o4-mini") == 200_000
    assert context_window_for("qwen2.5:7b") == 128_000  # unknown: the default
    local = OpenAICompatProvider(
        model="qwen2.5:7b", base_url="http://127.0.0.1:1/v1", context_window=32_768
    )
    assert local.context_window == 32_768


def test_openai_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ProviderConfigError, match="no API key") as info:
        OpenAICompatProvider(model="gpt-4o")
    assert "OPENAI_API_KEY" in info.value.hint


async def test_injected_client_is_used(server: FakeOpenAIServer) -> None:
    import openai

    client = openai.AsyncOpenAI(api_key="sk-injected", base_url=server.url, max_retries=0)
    provider = OpenAICompatProvider(model="gpt-4o-mini", client=client)
    assert provider.base_url == server.url
    server.queue("text_completion")
    await provider.complete(ask("hi"))
    assert server.requests[-1].headers["authorization"] == "Bearer sk-injected"
    await provider.aclose()  # not ours: must stay usable
    server.queue("text_completion")
    await provider.complete(ask("again"))
    await client.close()


def test_missing_sdk_is_a_config_error_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_openai(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(openai_compat, "_import_module", no_openai)
    with pytest.raises(ProviderConfigError) as info:
        OpenAICompatProvider(model="gpt-4o-mini", api_key=TEST_KEY)
    assert "pip install 'orchestrion[openai]'" in str(info.value)
    with pytest.raises(ProviderConfigError, match=r"orchestrion\[openai\]"):
        resolve_provider("vllm:meta-llama/Llama-3.1-8B-Instruct")


# --------------------------------------------------------------------------- resolve_provider


@pytest.mark.parametrize(
    ("spec", "base_url", "model"),
    [
        ("ollama:llama3.1:8b", "http://127.0.0.1:11434/v1", "llama3.1:8b"),
        (
            "vllm:meta-llama/Llama-3.1-8B-Instruct",
            "http://127.0.0.1:8000/v1",
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
        ("llamacpp:qwen2.5-7b-instruct", "http://127.0.0.1:8080/v1", "qwen2.5-7b-instruct"),
        ("litellm:claude-sonnet-4", "http://127.0.0.1:4000", "claude-sonnet-4"),
    ],
)
def test_resolve_local_prefixes(spec: str, base_url: str, model: str) -> None:
    provider = resolve_provider(spec)
    assert isinstance(provider, OpenAICompatProvider)
    assert provider.base_url == base_url
    assert provider.model == model
    assert provider.token_limit_param == "max_tokens"


@pytest.mark.parametrize(
    ("prefix", "env"),
    [
        ("ollama", "OLLAMA_BASE_URL"),
        ("vllm", "VLLM_BASE_URL"),
        ("llamacpp", "LLAMACPP_BASE_URL"),
        ("litellm", "LITELLM_BASE_URL"),
    ],
)
def test_resolve_local_prefix_base_url_from_env(
    monkeypatch: pytest.MonkeyPatch, prefix: str, env: str
) -> None:
    monkeypatch.setenv(env, "http://gpu-box.invalid:9000/v1/")
    provider = resolve_provider(f"{prefix}:some-model")
    assert isinstance(provider, OpenAICompatProvider)
    assert provider.base_url == "http://gpu-box.invalid:9000/v1"
    # An explicit override beats the environment.
    other = resolve_provider(f"{prefix}:some-model", base_url="http://127.0.0.1:1/v1")
    assert isinstance(other, OpenAICompatProvider)
    assert other.base_url == "http://127.0.0.1:1/v1"


def test_resolve_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    provider = resolve_provider("openai:gpt-4o-mini")
    assert isinstance(provider, OpenAICompatProvider)
    assert provider.base_url == OPENAI_BASE_URL  # constructed only; nothing is contacted
    assert provider.model == "gpt-4o-mini"
    assert provider.token_limit_param == "max_completion_tokens"
    tuned = resolve_provider("openai:gpt-4o-mini", context_window=64_000)
    assert tuned.context_window == 64_000


def test_resolve_openai_compat_needs_base_url(server: FakeOpenAIServer) -> None:
    with pytest.raises(ProviderConfigError, match="openai-compat:my-model") as info:
        resolve_provider("openai-compat:my-model")
    assert "base_url=" in info.value.hint
    provider = resolve_provider("openai-compat:my-model", base_url=server.url, api_key="k")
    assert isinstance(provider, OpenAICompatProvider)
    assert provider.base_url == server.url


async def test_local_prefix_never_sends_the_openai_key(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-openai-key")
    server.queue("ollama_text", "ollama_text")
    provider = resolve_provider("ollama:llama3.1:8b", base_url=server.url)

    response = await provider.complete(ask("Say hello in French."))

    assert response.text == "Bonjour !"
    assert response.model == "llama3.1:8b"
    assert response.usage == Usage(input_tokens=26, output_tokens=5, requests=1)
    assert server.requests[-1].headers["authorization"] == f"Bearer {LOCAL_DUMMY_API_KEY}"

    monkeypatch.setenv("OLLAMA_API_KEY", "ollama-secret")
    keyed = resolve_provider("ollama:llama3.1:8b", base_url=server.url)
    await keyed.complete(ask("again"))
    assert server.requests[-1].headers["authorization"] == "Bearer ollama-secret"


@pytest.mark.parametrize("spec", ["mistral:large", "gpt-4o-mini", "openai:", ":gpt-4o"])
def test_resolve_rejects_bad_strings_listing_known_prefixes(spec: str) -> None:
    with pytest.raises(ProviderConfigError) as info:
        resolve_provider(spec)
    for prefix in ("openai", "ollama", "vllm", "llamacpp", "litellm", "openai-compat"):
        assert prefix in info.value.hint


def test_resolve_passes_provider_instances_through(provider: OpenAICompatProvider) -> None:
    assert resolve_provider(provider) is provider
    with pytest.raises(ProviderConfigError, match="overrides"):
        resolve_provider(provider, base_url="http://127.0.0.1:1/v1")


def test_register_provider(monkeypatch: pytest.MonkeyPatch, provider: OpenAICompatProvider) -> None:
    monkeypatch.setattr(resolve, "_FACTORIES", dict(resolve._FACTORIES))
    seen: dict[str, Any] = {}

    def factory(model: str, **overrides: Any) -> Provider:
        seen.update(model=model, **overrides)
        return provider

    register_provider("MyCloud", factory)
    assert "mycloud" in known_prefixes()
    assert resolve_provider("mycloud:big-model", region="eu") is provider
    assert seen == {"model": "big-model", "region": "eu"}
    with pytest.raises(ProviderConfigError):
        register_provider("bad:prefix", factory)
