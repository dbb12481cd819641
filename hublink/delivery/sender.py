"""Sender: the drain's call step, sending a batch that got through the gates and writing down each answer.

A claim that may mix call kinds goes out as runs of one kind, in claim order (``hublink.delivery.kinds``);
replace work runs as a reconcile (``hublink.delivery.reconcile``). Identical pairs go as one input and
share its answer. A whole-batch refusal that may be the fault of a few inputs is isolated: pairs holding an
id HubSpot named invalid fail alone, the others go again at once and spend no attempt; a refusal naming
nothing is split in halves until the guilty inputs are found (at most 2·⌈log2 n⌉ extra calls). Every
call after the batch's first takes its own rate-limit token; one that would wait too long sends the rest
back. Every answer, per item, goes into the batch's :class:`~hublink.delivery.batch.Sent`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, cast

from hublink import tracing
from hublink.delivery import displacements, kinds, outcomes, reconcile
from hublink.delivery.batch import Batch
from hublink.delivery.credentials import Credential, CredentialProvider
from hublink.delivery.gates import LimiterGate
from hublink.delivery.hubspot import CallResult
from hublink.delivery.labels import LabelResolver, resolve_types
from hublink.domain.associations import AssociationRequest, AssociationType, CallKind
from hublink.domain.errors import AuthError, DeliveryError, TokenWaitTooLongError, TransientError
from hublink.lanes import Claimed
from hublink.lanes.codec import member_origin
from hublink.store.counters import CounterOps

log = logging.getLogger("hublink.delivery.drain")

Pair = tuple[str, str]


class AssociationClient(Protocol):
    """The HubSpot calls a drain makes (``hublink.delivery.hubspot.HubSpotClient``)."""

    def associate_default(
        self, token: str, from_type: str, from_id: str, to_type: str, to_id: str, *, base_url: str | None = None
    ) -> CallResult:
        """Link one pair with the default association type."""
        ...

    def associate_default_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        pairs: Sequence[tuple[str, str]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """Link several pairs of one object-type pair in one call."""
        ...


class Sender:
    """Sends batches through the one HubSpot client; built once per drainer."""

    def __init__(
        self,
        *,
        client: AssociationClient,
        credentials: CredentialProvider,
        limiter: LimiterGate,
        on_failure: Callable[[Batch, DeliveryError], None],
        labels: LabelResolver | None = None,
        metrics: CounterOps | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._limiter = limiter
        self._on_failure = on_failure
        self._labels = labels
        self._metrics = metrics
        self._clock = clock

    def send(self, batch: Batch) -> None:
        """Send ``batch.items`` (the batch's first token already taken); every answer goes into ``batch.sent``."""
        if not batch.items:
            return
        batch.called = True
        batch.sent.call_from = len(batch.sent.answers)
        requests = [outcomes.association_of(item) for item in batch.items]
        if all(r.call_kind == "default" for r in requests):
            self._isolate(batch, batch.items, kind="default", types={}, token_taken=True)
        else:
            self._runs(batch, requests)

    def _runs(self, batch: Batch, requests: Sequence[AssociationRequest]) -> None:
        """Send a claim that mixes call kinds as runs of one kind, in claim order.

        Labels are resolved first (an unknown one fails its items alone). Once an action on a pair has
        failed, the pair's later actions in this claim are held, so that they cannot overtake it.
        """
        items, sent, credential = batch.items, batch.sent, batch.credential
        assert credential is not None
        types: dict[int, tuple[AssociationType, ...]] = {}

        def take() -> None:
            wait = self._limiter.take_for(credential)
            if wait:
                raise TokenWaitTooLongError(wait)

        where = (credential, batch.portal, batch.from_type, batch.to_type)
        unresolved = resolve_types(self._labels, *where, requests, types, take)
        for i, error in unresolved.items():
            sent.answer([items[i]], error)
        failed = {requests[i].pair for i in unresolved}
        cut = kinds.runs(requests)
        for number, (kind, indexes) in enumerate(cut):
            if sent.tripped:
                # The portal's circuit opened on an earlier run: the rest goes back unsent.
                sent.back += [items[i] for _, later in cut[number:] for i in later if i not in unresolved]
                return
            ready: list[int] = []
            for i in indexes:
                if i in unresolved:
                    continue
                if requests[i].pair in failed:
                    sent.held.append(items[i])
                else:
                    ready.append(i)
            if not ready:
                continue
            before = len(sent.answers)
            token_taken = sent.calls == 0  # the drain took one token for the claim's first call
            if kind == "replace":
                run_types = {n: types[i] for n, i in enumerate(ready) if i in types}
                stopped = self._reconcile(batch, [items[i] for i in ready], run_types, token_taken)
            else:
                pair_types: dict[Pair, tuple[AssociationType, ...]] = {}
                for i in ready:  # one input per pair: the labels asked for one pair in one run are sent together
                    known = pair_types.get(requests[i].pair, ())
                    pair_types[requests[i].pair] = known + tuple(t for t in types.get(i, ()) if t not in known)
                watch = displacements.watched(batch.from_type, batch.to_type, pair_types) if kind == "create" else {}
                existing = self._read_before(batch, watch) if watch else None
                stopped = self._isolate(
                    batch, [items[i] for i in ready], kind=kind, types=pair_types, token_taken=token_taken
                )
                if existing is not None:
                    linked = [
                        (outcomes.association_of(r.item).pair, r.item.association_id)
                        for r in sent.answers[before:]
                        if r.error is None
                    ]
                    sent.displaced += displacements.moved(
                        existing,
                        watch,
                        linked,
                        portal_id=batch.portal,
                        from_type=batch.from_type,
                        to_type=batch.to_type,
                    )
            failed |= {outcomes.association_of(r.item).pair for r in sent.answers[before:] if r.error is not None}
            if stopped:
                sent.back += [items[i] for _, later in cut[number + 1 :] for i in later if i not in unresolved]
                return

    def _isolate(
        self,
        batch: Batch,
        items: Sequence[Claimed],
        *,
        kind: CallKind,
        types: Mapping[Pair, Sequence[AssociationType]],
        token_taken: bool,
    ) -> bool:
        """Send ``items`` as calls of one ``kind``, isolating refused inputs; True when a token was too far off."""
        sent = batch.sent
        by_pair: dict[Pair, list[Claimed]] = {}
        for item in items:
            by_pair.setdefault(outcomes.association_of(item).pair, []).append(item)
        groups = [list(by_pair)]
        first = True
        while groups:
            if sent.tripped:
                # The portal's circuit opened on an earlier call: send nothing more for it.
                sent.back += [item for group in groups for pair in group for item in by_pair[pair]]
                return False
            group = groups.pop(0)
            if not (first and token_taken):
                wait_ms = self._limiter.take_for(cast(Credential, batch.credential))
                if wait_ms:
                    groups.insert(0, group)
                    due = int(self._clock() * 1000) + wait_ms
                    self._limiter.count_wait("park")
                    sent.give_back([item for g in groups for pair in g for item in by_pair[pair]], due)
                    sent.park(due)
                    return True
            first = False
            sent.calls += 1
            answer = self._call(batch, group, kind=kind, types=types)
            error = answer.error
            if error is None:
                for pair in group:
                    sent.answer(by_pair[pair], answer.outcome(pair))
                continue
            if len(group) == 1 or not outcomes.is_isolatable(error):
                for pair in group:
                    sent.answer(by_pair[pair], error)
                continue
            guilty = outcomes.guilty_pairs(group, error, batch.from_type, batch.to_type)
            for pair, pair_error in guilty.items():
                sent.answer(by_pair[pair], pair_error)
            if guilty and len(guilty) < len(group):
                groups.insert(0, [pair for pair in group if pair not in guilty])
            elif not guilty:
                half = len(group) // 2
                groups[:0] = [group[:half], group[half:]]
            log.info(
                "batch refused; isolating the guilty inputs",
                extra={"lane_size": len(group), "guilty": len(guilty), "correlation_id": error.correlation_id},
            )
        return False

    def _read_before(
        self, batch: Batch, watch: Mapping[Pair, tuple[int, ...]]
    ) -> Mapping[str, Sequence[tuple[str, tuple[AssociationType, ...]]]] | None:
        """The from records' associations before a write of a single-valued type, or None (nothing recorded).

        Worth one call only for such writes (``hublink.delivery.displacements``); it takes its own token and
        is skipped when none is near or it fails: knowing what moved never holds up the write.
        """
        credential = cast(Credential, batch.credential)
        if self._limiter.take_for(credential):
            return None
        from_ids = sorted({pair[0] for pair in watch})[: reconcile.MAX_READ_INPUTS]
        batch.sent.calls += 1
        client = cast(reconcile.AssociationReader, self._client)
        try:
            found = client.read_associations_batch(
                credential.token, batch.from_type, batch.to_type, from_ids, base_url=credential.base_url
            )
        except DeliveryError as exc:
            batch.sent.ops.extend(outcomes.request_ops(self._metrics, "batch_read", exc.status, exc, self._clock()))
            self._limiter.learn(credential, exc.detail.rate, exc)
            return None
        batch.sent.ops.extend(outcomes.request_ops(self._metrics, "batch_read", 200, None, self._clock()))
        return found

    def _reconcile(
        self,
        batch: Batch,
        items: Sequence[Claimed],
        types: Mapping[int, tuple[AssociationType, ...]],
        token_taken: bool,
    ) -> bool:
        """Run one run of replace work, each call with its own token; True when a token was too far off.

        When a token would wait too long, the whole run goes back untouched: reconciling again is harmless.
        """
        sent, credential = batch.sent, cast(Credential, batch.credential)
        first = True

        def spend() -> None:
            nonlocal first
            if not (first and token_taken):
                wait = self._limiter.take_for(credential)
                if wait:
                    raise TokenWaitTooLongError(wait)
            first = False
            sent.calls += 1

        def call(kind: CallKind, pairs: Sequence[Pair], specs: Mapping[Pair, Sequence[AssociationType]]) -> CallResult:
            spend()
            return self._call(batch, pairs, kind=kind, types=specs)

        def read(from_ids: Sequence[str]) -> reconcile.Existing | DeliveryError:
            spend()
            client = cast(reconcile.AssociationReader, self._client)
            try:
                found = client.read_associations_batch(
                    credential.token, batch.from_type, batch.to_type, from_ids, base_url=credential.base_url
                )
            except DeliveryError as exc:
                sent.ops.extend(outcomes.request_ops(self._metrics, "batch_read", exc.status, exc, self._clock()))
                self._limiter.learn(credential, exc.detail.rate, exc)
                return exc
            sent.ops.extend(outcomes.request_ops(self._metrics, "batch_read", 200, None, self._clock()))
            return found

        requests = [outcomes.association_of(item) for item in items]
        try:
            done = reconcile.reconcile(requests, types, read, call)
        except TokenWaitTooLongError as exc:
            due = int(self._clock() * 1000) + exc.wait_ms
            self._limiter.count_wait("park")
            sent.give_back(items, due)
            sent.park(due)
            return True
        for from_id, removed in done.removed.items():
            log.info(
                "reconcile removed associations",
                extra={
                    "portal_id": batch.portal,
                    "from": f"{batch.from_type}/{from_id}",
                    "to_type": batch.to_type,
                    "removed": removed,
                },
            )
            if self._metrics is not None:
                source = next((r.source for r in requests if r.from_object_id == from_id), "?")
                sent.ops.append(self._metrics.op("reconcile_removed", len(removed), source=source))
        for i, error in done.errors.items():
            sent.answer([items[i]], error)
        return False

    def _call(
        self,
        batch: Batch,
        pairs: Sequence[Pair],
        *,
        kind: CallKind,
        types: Mapping[Pair, Sequence[AssociationType]],
    ) -> CallResult:
        """One HubSpot call of ``kind`` for ``pairs`` (distinct): its answer, a whole call's refusal included.

        With tracing on, the call's HTTP span carries the lane, portal and size, and links to the request of
        every association it carries (``hublink.tracing.hubspot_call``).
        """
        with tracing.hubspot_call(batch.lane, batch.portal, kind, len(pairs), lambda: _origins(batch.items, pairs)):
            return self._call_hubspot(batch, pairs, kind=kind, types=types)

    def _call_hubspot(
        self,
        batch: Batch,
        pairs: Sequence[Pair],
        *,
        kind: CallKind,
        types: Mapping[Pair, Sequence[AssociationType]],
    ) -> CallResult:
        """The call itself, and what its answer or refusal means for the limiter, the circuit and the metrics."""
        credential = cast(Credential, batch.credential)
        token, base_url = credential.token, credential.base_url
        from_type, to_type = batch.from_type, batch.to_type
        endpoint = kinds.endpoint(kind, len(pairs))
        try:
            if kind != "default":
                labelled = cast(kinds.LabelledClient, self._client)
                result = kinds.send(labelled, kind, token, from_type, to_type, pairs, types, base_url=base_url)
            elif len(pairs) == 1:
                (from_id, to_id) = pairs[0]
                result = self._client.associate_default(token, from_type, from_id, to_type, to_id, base_url=base_url)
            else:
                result = self._client.associate_default_batch(token, from_type, to_type, pairs, base_url=base_url)
        except DeliveryError as exc:
            batch.sent.ops += outcomes.request_ops(self._metrics, endpoint, exc.status, exc, self._clock())
            self._on_failure(batch, exc)
            # One line that says why and where (the host: a worker may be calling another HubSpot than meant),
            # logged before an OAuth refusal becomes a retry so that the refusal itself is named.
            log.info(
                "hubspot call failed",
                extra={
                    "lane_size": len(pairs),
                    "error": type(exc).__name__,
                    "reason": exc.detail.message[:200],
                    "host": exc.host,
                    "status": exc.status,
                    "category": exc.category,
                    "correlation_id": exc.correlation_id,
                },
            )
            if isinstance(exc, AuthError) and credential.refreshable:
                # HubSpot refused an OAuth token: refresh once and retry, rather than give up on the pair.
                self._credentials.invalidate(batch.portal)
                exc = TransientError(exc.detail)
            self._limiter.learn(credential, exc.detail.rate, exc)
            return CallResult.refused(exc)
        self._limiter.learn(credential, result.rate, None)
        batch.sent.ops += outcomes.request_ops(self._metrics, endpoint, 200, None, self._clock())
        return result


def _origins(items: Sequence[Claimed], pairs: Sequence[Pair]) -> list[str]:
    """The origins (``hublink.tracing``) of the items a call for ``pairs`` carries: its links, one per request."""
    wanted = set(pairs)
    return [member_origin(item.member) for item in items if outcomes.association_of(item).pair in wanted]
