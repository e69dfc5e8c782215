"""Envelope: every value passed between steps, with its provenance.

An envelope records who produced a payload (``sender``), for whom (``recipient``),
at which step (``key``), from which earlier steps (``sources``), and whether
untrusted content reached it (``tainted``, with the ``taint_sources`` that did).
Taint is sticky: anything derived from a tainted envelope is tainted.  Envelopes
can be signed with an HMAC so a hand-off that was tampered with is detected.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, fields, replace
from typing import Any

from orchestrion.contracts.contract import payload_json


@dataclass(frozen=True, slots=True)
class Envelope:
    """A payload with provenance. Immutable; derive new ones with :meth:`derive`."""

    payload: Any
    sender: str
    key: str
    recipient: str | None = None
    sources: tuple[str, ...] = ()
    tainted: bool = False
    taint_sources: tuple[str, ...] = ()
    signature: str | None = None
    synthetic: bool = False

    def derive(
        self,
        payload: Any,
        *,
        sender: str,
        key: str,
        recipient: str | None = None,
        extra: tuple[Envelope, ...] = (),
        tainted_by: tuple[str, ...] = (),
    ) -> Envelope:
        """A new envelope produced from this one (and ``extra`` inputs) at step ``key``."""
        if not extra and not tainted_by:  # one input, no new taint: the hot path of a chain
            if self.synthetic:
                sources = tuple(dict.fromkeys(self.sources))
            else:
                sources = (self.key,) if self.key else ()
            taint = self.taint_sources
            if type(taint) is not tuple:
                taint = tuple(taint)
            return _envelope(payload, sender, key, recipient, sources, bool(taint), taint, None,
                             False)
        # Several inputs, in linear time.  Sources: each once, first occurrence first; a
        # pattern-built bundle is not a step, so point through it to the steps behind it.
        found: list[str] = []
        groups: list[tuple[str, ...]] = []
        for env in (self, *extra):
            if env.synthetic:
                found += env.sources
            elif env.key:
                found.append(env.key)
            if env.taint_sources:
                groups.append(env.taint_sources)
        if tainted_by:
            groups.append(tainted_by)
        sources = tuple(dict.fromkeys(found))
        # Taint: each group (an input's taint sources, then tainted_by) adds the names
        # not already present (a group's own repeats are kept, as they always were).
        if len(groups) <= 1:
            taint = tuple(groups[0]) if groups else ()
        else:
            seen: set[str] = set()
            taint_list: list[str] = []
            for group in groups:
                new = [t for t in group if t not in seen]
                taint_list += new
                seen.update(new)
            taint = tuple(taint_list)
        return _envelope(payload, sender, key, recipient, sources, bool(taint), taint, None, False)

    def bundle(
        self,
        payload: Any,
        *,
        sender: str,
        key: str,
        recipient: str | None = None,
        extra: tuple[Envelope, ...] = (),
        tainted_by: tuple[str, ...] = (),
    ) -> Envelope:
        """Like :meth:`derive`, for a payload a pattern assembles (not a step's output).

        Envelopes derived from a bundle name the bundle's sources, so provenance
        always leads to real steps.
        """
        env = self.derive(payload, sender=sender, key=key, recipient=recipient, extra=extra,
                          tainted_by=tainted_by)
        return _envelope(env.payload, env.sender, env.key, env.recipient, env.sources,
                         env.tainted, env.taint_sources, None, True)

    def provenance(self) -> dict[str, Any]:
        """JSON-able provenance for the journal and traces."""
        return {
            "sender": self.sender,
            "recipient": self.recipient,
            "sources": list(self.sources),
            "tainted": self.tainted,
            "taint_sources": list(self.taint_sources),
        }

    # ------------------------------------------------------------------ signing

    def _message(self) -> bytes:
        head = "|".join(
            (self.sender, self.recipient or "", self.key, ",".join(self.sources),
             "1" if self.tainted else "0", ",".join(self.taint_sources))
        )
        return (head + "|" + payload_json(self.payload)).encode()

    def signed(self, secret: bytes) -> Envelope:
        """This envelope with an HMAC-SHA256 signature over payload and provenance."""
        sig = hmac.new(secret, self._message(), hashlib.sha256).hexdigest()
        return replace(self, signature=sig)

    def verify(self, secret: bytes) -> bool:
        """True when the signature matches payload and provenance under ``secret``."""
        if self.signature is None:
            return False
        expected = hmac.new(secret, self._message(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.signature)


_FIELDS = ("payload", "sender", "key", "recipient", "sources", "tainted", "taint_sources",
           "signature", "synthetic")
assert tuple(f.name for f in fields(Envelope)) == _FIELDS, "update _envelope() with the fields"
_set = [Envelope.__dict__[name].__set__ for name in _FIELDS]  # the slots' own setters


def _envelope(payload: Any, sender: str, key: str, recipient: str | None,
              sources: tuple[str, ...], tainted: bool, taint_sources: tuple[str, ...],
              signature: str | None, synthetic: bool,
              _new: Any = object.__new__, _s: list[Any] = _set) -> Envelope:
    """``Envelope(...)`` with every field given, about twice as fast: the frozen
    dataclass ``__init__`` goes through ``object.__setattr__`` once per field."""
    env = _new(Envelope)
    _s[0](env, payload)
    _s[1](env, sender)
    _s[2](env, key)
    _s[3](env, recipient)
    _s[4](env, sources)
    _s[5](env, tainted)
    _s[6](env, taint_sources)
    _s[7](env, signature)
    _s[8](env, synthetic)
    return env


def origin(payload: Any, *, tainted: bool = False, source: str = "input") -> Envelope:
    """The envelope of a run's input. Mark ``tainted`` when the input itself is untrusted."""
    return Envelope(
        payload=payload,
        sender=source,
        key="",
        tainted=tainted,
        taint_sources=(source,) if tainted else (),
    )
