"""tracing: spans, cost allocation and blame attribution (:func:`explain`)."""

from orchestrion.tracing.explain import Explanation, Suspect, explain

__all__ = ["Explanation", "Suspect", "explain"]
