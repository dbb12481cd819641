"""A batch: one claim on its way through the drain, and :class:`Sent`, what became of each of its items.

The drain claims a batch, passes it through its gates, calls HubSpot and settles it. Everything the gates
and the call learn about the items goes into the batch's one :class:`Sent`; the settle step reads nothing
else. Gates stop a batch by writing into it too (what goes back unsent, whether and until when the lane
parks), so that the loop has one way to end a batch and one way to leave a lane.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hublink.delivery.credentials import Credential
from hublink.delivery.displacements import Displacement
from hublink.delivery.outcomes import Result
from hublink.domain.errors import DeliveryError
from hublink.lanes import Claim, Claimed
from hublink.store.counters import Op


@dataclass(slots=True)
class Sent:
    """What became of a batch: each answered item with HubSpot's word on it, and what goes back unsent."""

    #: Each answered item and its error (None: linked), from a gate or from HubSpot, in the order answered.
    answers: list[Result] = field(default_factory=list)
    #: Metric increments that ride on the settle step.
    ops: list[Op] = field(default_factory=list)
    #: HubSpot calls made for the batch.
    calls: int = 0
    #: Where the call step's answers start in ``answers`` (the ones before were answered by gates).
    call_from: int = 0
    #: Items behind a failed action on their pair: back just behind its retry, no attempt spent.
    held: list[Claimed] = field(default_factory=list)
    #: Items not sent: back untouched (no attempt spent), due at ``back_due_ms``.
    back: list[Claimed] = field(default_factory=list)
    back_due_ms: int = 0
    #: Items handed back that count as deferred in the drain's report (an open circuit's).
    deferred: int = 0
    #: A call of this batch opened the portal's circuit: nothing more is sent for it.
    tripped: bool = False
    #: The lane leaves after this batch: parked until ``park_until_ms`` when it is in the future.
    leave: bool = False
    park_until_ms: int = 0
    #: The pause that stopped the lane (``circuit:<p>`` when this batch's call opened the circuit), or "".
    paused: str = ""
    #: What this batch's writes of single-valued types moved from other records (kept after the settle).
    displaced: list[Displacement] = field(default_factory=list)

    def answer(self, items: Iterable[Claimed], error: DeliveryError | None) -> None:
        """Record HubSpot's (or a gate's) word on ``items``: None for linked, else the error."""
        self.answers.extend(Result(item, error) for item in items)

    def give_back(self, items: Iterable[Claimed], due_ms: int) -> None:
        """Return ``items`` untouched, due at ``due_ms``."""
        self.back.extend(items)
        self.back_due_ms = due_ms

    def park(self, until_ms: int) -> None:
        """Leave the lane after this batch, parked until ``until_ms``."""
        self.leave = True
        self.park_until_ms = until_ms


@dataclass(slots=True)
class Batch:
    """One claim of one lane, with what the gates learnt of it, and its :class:`Sent`."""

    lane: str
    portal: str | None
    from_type: str
    to_type: str
    is_lookup: bool
    claim: Claim
    #: The items still to send: gates take some out (answered, handed back) before the call.
    items: list[Claimed]
    credential: Credential | None = None
    #: This batch is an open circuit's probe: its answer closes the circuit.
    probing: bool = False
    #: The call step ran for this batch.
    called: bool = False
    sent: Sent = field(default_factory=Sent)
