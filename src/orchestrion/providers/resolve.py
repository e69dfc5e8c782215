"""Provider strings: ``"PREFIX:MODEL"`` -> a :class:`~orchestrion.providers.base.Provider`.

Built-in prefixes, all served by :class:`~orchestrion.providers.openai_compat.OpenAICompatProvider`:

=================  ======================================  ==================================
prefix             base_url (override > env > default)     API key (override > env > none)
=================  ======================================  ==================================
``openai``         ``OPENAI_BASE_URL`` > api.openai.com    ``OPENAI_API_KEY`` (required)
``ollama``         ``OLLAMA_BASE_URL`` > 127.0.0.1:11434   ``OLLAMA_API_KEY``
``vllm``           ``VLLM_BASE_URL`` > 127.0.0.1:8000      ``VLLM_API_KEY``
``llamacpp``       ``LLAMACPP_BASE_URL`` > 127.0.0.1:8080  ``LLAMACPP_API_KEY``
``litellm``        ``LITELLM_BASE_URL`` > 127.0.0.1:4000   ``LITELLM_API_KEY``
``openai-compat``  the ``base_url=`` override (required)   ``OPENAI_API_KEY``
=================  ======================================  ==================================

The local-server prefixes deliberately never fall back to ``OPENAI_API_KEY``: a
real OpenAI key has no business being sent to a local or third-party server.

Other prefixes plug in with :func:`register_provider`. The scripted and Anthropic
provider modules register themselves when imported; :func:`resolve_provider`
imports them on first use of their prefix.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable
from typing import Any

from orchestrion.errors import ProviderConfigError
from orchestrion.providers.base import Provider
from orchestrion.providers.openai_compat import LOCAL_DUMMY_API_KEY, OpenAICompatProvider

__all__ = ["ProviderFactory", "known_prefixes", "register_provider", "resolve_provider"]

ProviderFactory = Callable[..., Provider]
"""``factory(model: str, **overrides) -> Provider``: builds a provider for one model."""

_FACTORIES: dict[str, ProviderFactory] = {}

# Prefixes whose provider lives in a module that registers it on import. Imported on
# demand so that a provider string works without the user importing that module
# first, and so that orchestrion does not import every adapter up front.
_SELF_REGISTERING: dict[str, str] = {
    "scripted": "orchestrion.providers.scripted",
    "anthropic": "orchestrion.providers.anthropic",
}


def register_provider(prefix: str, factory: ProviderFactory) -> None:
    """Make ``"PREFIX:MODEL"`` strings resolve through ``factory(model, **overrides)``.

    Registering an existing prefix replaces it (last one wins), so an application
    can swap in its own adapter for a built-in prefix.
    """
    key = prefix.strip().lower()
    if not key or ":" in key:
        raise ProviderConfigError(
            f"invalid provider prefix {prefix!r}",
            hint="use a short name without ':' such as 'mycloud'",
        )
    _FACTORIES[key] = factory


def known_prefixes() -> tuple[str, ...]:
    """The prefixes that resolve right now, sorted (self-registering ones once imported)."""
    return tuple(sorted(_FACTORIES))


def resolve_provider(spec: str | Provider, **overrides: Any) -> Provider:
    """Turn ``"PREFIX:MODEL"`` into a provider; a Provider instance is returned as is.

    ``overrides`` are passed to the prefix's factory (for the built-ins: any
    :class:`OpenAICompatProvider` keyword, e.g. ``base_url=``, ``api_key=``,
    ``context_window=``, ``timeout=``).

    Raises:
        ProviderConfigError: the string has no ``:``, names an unknown prefix or no
            model, ``openai-compat`` lacks ``base_url``, or overrides were given with
            a Provider instance.
    """
    if not isinstance(spec, str):
        if overrides:
            raise ProviderConfigError(
                f"overrides {sorted(overrides)} cannot be applied to a provider instance",
                hint="configure the instance directly, or pass a provider string",
            )
        return spec
    prefix, sep, model = spec.strip().partition(":")
    prefix = prefix.lower()
    if not sep or not prefix or not model:
        raise ProviderConfigError(
            f"provider string {spec!r} is not of the form 'PREFIX:MODEL'",
            hint=f"write e.g. 'openai:{model or spec or 'gpt-4o-mini'}'; {_known_text()}",
        )
    factory = _factory_for(prefix)
    if factory is None:
        raise ProviderConfigError(
            f"unknown provider prefix {prefix!r} in {spec!r}",
            hint=f"{_known_text()}; add others with register_provider(prefix, factory)",
        )
    return factory(model, **overrides)


def _factory_for(prefix: str) -> ProviderFactory | None:
    if prefix not in _FACTORIES and prefix in _SELF_REGISTERING:
        _try_import(_SELF_REGISTERING[prefix])
    return _FACTORIES.get(prefix)


def _try_import(module: str) -> None:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only "that adapter module does not exist (yet)" is swallowed; a module that
        # exists but fails to import is a real error the user must see.
        if exc.name != module:
            raise


def _known_text() -> str:
    for module in _SELF_REGISTERING.values():
        # Building an error message must not raise a different error.
        with contextlib.suppress(ImportError):
            _try_import(module)
    return "known prefixes: " + ", ".join(known_prefixes())


# --------------------------------------------------------------------------- built-ins


def _openai(model: str, **overrides: Any) -> Provider:
    return OpenAICompatProvider(model=model, **overrides)


def _openai_compat(model: str, **overrides: Any) -> Provider:
    if not overrides.get("base_url") and overrides.get("client") is None:
        raise ProviderConfigError(
            f"'openai-compat:{model}' needs the server's API root",
            hint="pass base_url='http://host:port/v1' to resolve_provider",
        )
    return OpenAICompatProvider(model=model, **overrides)


def _local_server(url_env: str, default_url: str, key_env: str) -> ProviderFactory:
    def factory(model: str, **overrides: Any) -> Provider:
        # Environment read at resolve time, not import time, so it can change.
        if not overrides.get("base_url"):
            overrides["base_url"] = os.environ.get(url_env) or default_url
        if not overrides.get("api_key"):
            overrides["api_key"] = os.environ.get(key_env) or LOCAL_DUMMY_API_KEY
        return OpenAICompatProvider(model=model, **overrides)

    return factory


register_provider("openai", _openai)
register_provider("openai-compat", _openai_compat)
register_provider(
    "ollama", _local_server("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY")
)
register_provider(
    "vllm", _local_server("VLLM_BASE_URL", "http://127.0.0.1:8000/v1", "VLLM_API_KEY")
)
register_provider(
    "llamacpp", _local_server("LLAMACPP_BASE_URL", "http://127.0.0.1:8080/v1", "LLAMACPP_API_KEY")
)
register_provider(
    "litellm", _local_server("LITELLM_BASE_URL", "http://127.0.0.1:4000", "LITELLM_API_KEY")
)
