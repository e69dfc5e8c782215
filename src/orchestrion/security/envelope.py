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
from dataclasses import dataclass, replace
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
        sources: tuple[str, ...] = ()
        taint: tuple[str, ...] = ()
        for env in (self, *extra):
            # A pattern-built bundle is not a step: point through it to the steps behind it.
            for src in (env.sources if env.synthetic else (env.key,) if env.key else ()):
                if src not in sources:
                    sources += (src,)
            taint += tuple(t for t in env.taint_sources if t not in taint)
        taint += tuple(t for t in tainted_by if t not in taint)
        return Envelope(
            payload=payload,
            sender=sender,
            key=key,
            recipient=recipient,
            sources=sources,
            tainted=bool(taint),
            taint_sources=taint,
        )

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
        return replace(env, synthetic=True)

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


def origin(payload: Any, *, tainted: bool = False, source: str = "input") -> Envelope:
    """The envelope of a run's input. Mark ``tainted`` when the input itself is untrusted."""
    return Envelope(
        payload=payload,
        sender=source,
        key="",
        tainted=tainted,
        taint_sources=(source,) if tainted else (),
    )
