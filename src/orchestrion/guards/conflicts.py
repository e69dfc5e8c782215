"""Conflict detection between parallel outputs: when do two answers say the same thing?

Structured outputs are compared field by field; text is compared through a
pluggable :data:`Similarity` (a function of two strings returning a score in
[0, 1]) and a threshold.  :func:`clusters` groups answers that agree, so a merge
can take a majority over *meaning* ("Paris" / "paris." / "It is Paris") instead
of over bytes, and record a disagreement only where answers really differ.

Similarities shipped here are dependency-free and deterministic: :func:`exact`,
:func:`normalized` (case, whitespace and punctuation ignored),
:func:`token_jaccard` and :func:`sequence_ratio`.  Plug in an embedding cosine or
an NLI model the same way: any ``(str, str) -> float``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

from orchestrion.contracts.contract import dump_payload

Similarity = Callable[[str, str], float]
K = TypeVar("K", bound=Hashable)

_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def exact(a: str, b: str) -> float:
    """1.0 for identical strings, else 0.0."""
    return 1.0 if a == b else 0.0


def normalized(a: str, b: str) -> float:
    """1.0 when the strings have the same words (case, spacing and punctuation ignored)."""
    return 1.0 if _words(a) == _words(b) else 0.0


def token_jaccard(a: str, b: str) -> float:
    """Jaccard index of the two sets of words (case-folded)."""
    wa, wb = set(_words(a)), set(_words(b))
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def sequence_ratio(a: str, b: str) -> float:
    """difflib's ratio over the normalized texts: robust to small edits and typos."""
    na, nb = " ".join(_words(a)), " ".join(_words(b))
    return difflib.SequenceMatcher(None, na, nb, autojunk=False).ratio()


def agree(a: Any, b: Any, similarity: Similarity | None = None, threshold: float = 1.0) -> bool:
    """Whether two (dumped) values agree: text by similarity, objects field by field."""
    a, b = dump_payload(a), dump_payload(b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b or (similarity is not None and similarity(a, b) >= threshold)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k], similarity, threshold) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(
            agree(x, y, similarity, threshold) for x, y in zip(a, b, strict=True)
        )
    return bool(a == b)


def clusters(
    values: Mapping[K, Any], similarity: Similarity | None = None, threshold: float = 1.0
) -> list[list[K]]:
    """Group the keys of ``values`` whose values agree with the group's first member.

    Greedy and order-preserving (deterministic): each value joins the first
    cluster whose first member it agrees with.  Largest cluster first, ties in
    order of first appearance.
    """
    groups: list[list[K]] = []
    for k, v in values.items():
        for group in groups:
            if agree(values[group[0]], v, similarity, threshold):
                group.append(k)
                break
        else:
            groups.append([k])
    order = {id(g): i for i, g in enumerate(groups)}
    return sorted(groups, key=lambda g: (-len(g), order[id(g)]))


def similarity_name(similarity: Similarity | None, threshold: float) -> str:
    """How answers were compared, for decision and disagreement events."""
    if similarity is None:
        return "exact"
    name = getattr(similarity, "__name__", type(similarity).__name__)
    return f"{name} >= {threshold:g}"
