"""The simulator's memory: configuration, associations, the request log, faults, records, lifecycle, accounts.

Tokens, apps and installs are ``accounts.py``'s part of it (``SimState`` inherits ``Accounts``); merges and
deletions are kept by ``record_lifecycle.py``, association writes applied by ``association_writes.py``.

One lock guards all of it, so the threaded server's handlers always see consistent state; every public
method takes it once and does O(its input) work under it. The clock and the random source are injectable,
so rate windows, token expiry and fault rates can be tested without waiting and without flakiness.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubspot_sim.accounts import Accounts, Caller
from hubspot_sim.association_limits import AssociationLimits
from hubspot_sim.association_store import AssociationKey, AssociationStore
from hubspot_sim.association_types import (
    LabelRegistry,
    Spec,
    default_type_id,
    is_custom,
    made_up_type_id,
)
from hubspot_sim.association_writes import AssociationWriter, WriteInput, Writer, changed
from hubspot_sim.changes import Change
from hubspot_sim.config import Config
from hubspot_sim.daily_limits import DEFAULT_TIMEZONE, DailyCounters
from hubspot_sim.faults import Decision, Faults
from hubspot_sim.inputs import Side
from hubspot_sim.invalid_ids import InvalidIds
from hubspot_sim.journal import Journal
from hubspot_sim.journal_subscriptions import JournalSubscriptions
from hubspot_sim.notifier import Notifier
from hubspot_sim.oauth import OAuthRegistry
from hubspot_sim.object_types import canonical_type
from hubspot_sim.rate_limits import RateLimit, RollingWindows, parse_rate_limit
from hubspot_sim.record_lifecycle import RecordLifecycle
from hubspot_sim.records import Record, SearchQuery, SeedRecord
from hubspot_sim.request_log import RequestLog
from hubspot_sim.synthetic_records import SyntheticRecords
from hubspot_sim.webhook_sender import WebhookSender
from hubspot_sim.webhook_settings import WebhookApps

#: The one daily allowance static tokens share (HubSpot's is per account; OAuth portals have their own).
STATIC_ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether the limits let one request through; if not, the ``policy`` it hit; the headers to send."""

    accepted: bool
    headers: dict[str, str]
    policy: str | None = None


class SimState(Accounts):
    """All simulator state behind one lock (see the module docstring)."""

    def __init__(
        self,
        tokens: Iterable[str] = (),
        rate_limit: str | RateLimit | None = None,
        search_rate_limit: str | RateLimit | None = None,
        latency_ms: int = 0,
        *,
        records: Sequence[SeedRecord] = (),
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        batch_errors: str = "whole",
        records_mode: str = "any",
        daily_limit: int | None = None,
        timezone: str = DEFAULT_TIMEZONE,
        synthetic: Mapping[str, int] | None = None,
        webhook_io: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """The start-up configuration and seed, which ``reset()`` returns to.

        ``config`` is a ``PUT /_sim/config`` body applied to the start-up values (``--config``).
        ``webhook_io`` (``post``, ``wait``, ``spawn``) goes to the webhook sender, so that unit tests push
        without sockets, threads or waiting. Raises ValueError for a malformed rate limit, an unknown mode or
        time zone, or a daily limit below 1.
        """
        self._lock = threading.Lock()
        self._clock = clock
        self._rng = rng or random.Random()
        self._start = Config(
            tokens=frozenset(tokens),
            rate_limit=parse_rate_limit(rate_limit),
            search_rate_limit=parse_rate_limit(search_rate_limit),
            latency_ms=latency_ms,
            batch_errors=batch_errors,
            records=records_mode,
            daily_limit=daily_limit,
            timezone=timezone,
        )
        if config:
            self._start = self._start.updated(dict(config))
        self._start_records = list(records)
        created = clock()
        self._synthetic = {t: SyntheticRecords(t, n, created) for t, n in (synthetic or {}).items()}
        #: The webhooks journal, apps' webhook settings and the webhook sender each hold their own lock
        #: (deliveries run on their own threads); reset() empties them. Every delivery is journalled.
        self.journal = Journal(clock)
        self.apps = WebhookApps(clock)
        self.journal_subscriptions = JournalSubscriptions(clock)
        self.webhooks = WebhookSender(
            clock=clock, on_sent=lambda events: self.notifier.delivered(events), **(webhook_io or {})
        )
        #: Turns changes (records created, merged, deleted; associations written) into pushes and journal
        #: entries; it is called after the lock is released, and drives parts that hold their own locks.
        self.notifier = Notifier(
            apps=self.apps,
            journal=self.journal,
            subscriptions=self.journal_subscriptions,
            sender=self.webhooks,
            config=lambda: self._config,
        )
        self.reset()

    def reset(self) -> None:
        """Back to the start-up configuration and seed; all else (associations, deliveries, journal...) emptied."""
        self.webhooks.clear()
        self.journal.clear()
        self.apps.clear()
        self.journal_subscriptions.clear()
        self.notifier.clear()
        with self._lock:
            self._config = self._start
            self._windows = _windows(self._start.rate_limit)
            self._search_windows = _windows(self._start.search_rate_limit)
            self._daily = _daily(self._start)
            self._custom_types: set[str] = set()
            self._hidden: set[Side] = set()  # seeded records not visible yet (visibleAfterMs)
            self._associations = AssociationStore()
            self._labels = LabelRegistry()
            self._log = RequestLog()
            self._faults = Faults()
            self._records: dict[tuple[str, str], Record] = {}
            self._invalid = InvalidIds()
            self._oauth = OAuthRegistry()
            self._lifecycle = RecordLifecycle()
            self._limits = AssociationLimits(self._start.association_limits)
            self._token_throttled_until = 0.0
            self._seed(self._start_records)

    def now(self) -> float:
        """The state's clock (epoch seconds): answers' timestamps then agree with its records and windows."""
        return self._clock()

    # --- configuration and faults ---

    def configure(self, body: Any) -> dict[str, Any]:
        """Apply a ``PUT /_sim/config`` body; a changed rate limit starts with empty windows."""
        with self._lock:
            new = self._config.updated(body)
            if new.rate_limit != self._config.rate_limit:
                self._windows = _windows(new.rate_limit)
            if new.search_rate_limit != self._config.search_rate_limit:
                self._search_windows = _windows(new.search_rate_limit)
            if new.daily() != self._config.daily():
                self._daily = _daily(new)
            if new.association_limits != self._config.association_limits:
                self._limits = AssociationLimits(new.association_limits)
            if isinstance(body, dict) and "token_429_s" in body:
                self._token_throttled_until = self._clock() + new.token_429_s if new.token_429_s else 0.0
            self._config = new
            return new.as_dict()

    @property
    def config(self) -> Config:
        """The configuration in force (a frozen value: safe to read without the lock)."""
        return self._config

    def config_json(self) -> dict[str, Any]:
        """``GET /_sim/config`` (with the synthetic record counts, which only the command line sets)."""
        with self._lock:
            synthetic = {t: s.count for t, s in self._synthetic.items()}
            return {**self._config.as_dict(), "synthetic_records": synthetic}

    def set_faults(self, body: Any) -> dict[str, Any]:
        """Merge a ``POST /_sim/faults`` body into the faults in force; returns them."""
        with self._lock:
            self._faults.merge(body)
            return self._faults.as_dict()

    def clear_faults(self) -> None:
        """``DELETE /_sim/faults``."""
        with self._lock:
            self._faults = Faults()

    def faults_json(self) -> dict[str, Any]:
        """``GET /_sim/faults``."""
        with self._lock:
            return self._faults.as_dict()

    def decide(self, endpoint: str) -> Decision:
        """What the fault layer does to this request (scripted answers come first, in order)."""
        with self._lock:
            return self._faults.decide(endpoint, self._config.latency_ms, self._rng)

    # --- auth and rate limits ---

    def take(self, window_key: str, *, search: bool = False) -> tuple[bool, dict[str, str]]:
        """Count one request against ``window_key``'s rolling window: (accepted, rate-limit headers).

        Search has its own window and, as HubSpot's, its answers carry no rate-limit headers. With no limit
        configured every request is accepted and no headers are sent.
        """
        with self._lock:
            windows = self._search_windows if search else self._windows
            if windows is None:
                return True, {}
            accepted, remaining = windows.take(window_key, self._clock())
            return accepted, ({} if search else windows.limit.headers(remaining))

    def admit(self, window_key: str, *, search: bool = False) -> Admission:
        """Count one request against the daily allowance and the rolling window, if both have room.

        The daily allowance is checked first (a request past it answers DAILY); a request refused by either
        counts in neither. Daily headers go on every answer while a daily limit is set (search's too);
        rolling-window headers never on search's, as HubSpot's.
        """
        with self._lock:
            now = self._clock()
            account = _account(window_key)
            daily_headers: dict[str, str] = {}
            if self._daily is not None:
                left = self._daily.remaining(account, now)
                daily_headers = self._daily.limit.headers(left)
                if left <= 0:
                    return Admission(
                        False, {**self._rolling_headers(window_key, now, search), **daily_headers}, "DAILY"
                    )
            windows = self._search_windows if search else self._windows
            if windows is not None:
                accepted, remaining = windows.take(window_key, now)
                rolling = {} if search else windows.limit.headers(remaining)
                if not accepted:
                    policy = "SECONDLY" if search else "TEN_SECONDLY_ROLLING"
                    return Admission(False, {**rolling, **daily_headers}, policy)
            else:
                rolling = {}
            if self._daily is not None:
                daily_headers = self._daily.limit.headers(self._daily.take(account, now))
            return Admission(True, {**rolling, **daily_headers})

    def _rolling_headers(self, window_key: str, now: float, search: bool) -> dict[str, str]:
        if search or self._windows is None or not window_key:
            return {}
        return self._windows.limit.headers(self._windows.remaining(window_key, now))

    def rate_headers(self, window_key: str) -> dict[str, str]:
        """``window_key``'s rate-limit headers now, without counting a request (for scripted answers)."""
        with self._lock:
            now = self._clock()
            headers = self._rolling_headers(window_key, now, search=False)
            if self._daily is not None and window_key:
                headers.update(self._daily.limit.headers(self._daily.remaining(_account(window_key), now)))
            return headers

    # --- records ---

    def seed_records(self, records: Sequence[SeedRecord], portal_id: int | None = None) -> int:
        """Add or replace records (a replaced record keeps its createdAt); returns how many.

        Each new record fires a ``creation`` change of ``portal_id`` (default: the config's ``portal_id``).
        """
        with self._lock:
            created = self._seed(records)
            portal = portal_id if portal_id is not None else self._config.portal_id
            now = self._clock()
            changes = [Change("creation", t, i, portal, now) for t, i in created] if self._listening() else []
            apps, gone = self._oauth.apps(), self._oauth.uninstalled()
        self.notifier.notify(changes, apps, gone)
        return len(records)

    def _seed(self, records: Sequence[SeedRecord]) -> list[Side]:
        """Store ``records``; returns the ones that did not exist before."""
        now = self._clock()
        new: list[Side] = []
        for seed in records:
            key = (seed.object_type, seed.object_id)
            old = self._records.get(key)
            if old is None:
                new.append(key)
            self._lifecycle.restore(key)
            created = old.created_at if old is not None else now
            visible_at = now + seed.visible_after_ms / 1000
            self._records[key] = Record(seed.object_id, dict(seed.properties), created, now, visible_at)
            if seed.visible_after_ms:
                self._hidden.add(key)
            else:
                self._hidden.discard(key)
            if is_custom(seed.object_type):
                self._custom_types.add(seed.object_type)
        return new

    def _listening(self) -> bool:
        """True when some app or journal subscription may want changes (else none are made: the hot path)."""
        return bool(self._oauth.apps()) or self.journal_subscriptions.has_any()

    def declare_object_types(self, object_types: Iterable[str]) -> None:
        """``POST /_sim/object-types``: custom types (``2-<n>``) that then have default associations."""
        with self._lock:
            self._custom_types.update(object_types)

    def object_types_json(self) -> dict[str, Any]:
        """``GET /_sim/object-types``: the custom types known (declared or seeded)."""
        with self._lock:
            return {"objectTypes": sorted(self._custom_types)}

    def default_type_id(self, from_type: str, to_type: str) -> int | None:
        """The default association type id of a canonical pair, None if HubSpot has none for it."""
        with self._lock:
            return default_type_id(from_type, to_type, self._custom_types)

    def check_sides(self, sides: Iterable[Side]) -> dict[Side, int]:
        """The sides of one association request that are not valid now, with the status they answer.

        An id marked through ``/_sim/invalid-ids`` answers its status (and the request counts once against
        its ``ttl_requests``); a seeded record not visible yet answers 404, and so does any record not
        seeded when ``records`` is ``strict``.
        """
        with self._lock:
            strict = self._config.records == "strict"
            if not (self._invalid or self._hidden or strict or self._lifecycle):  # the benchmarks' hot path
                return {}
            unique = list(dict.fromkeys(sides))
            marked = self._invalid.screen((object_id for _, object_id in unique), self._clock())
            now = self._clock()
            bad: dict[Side, int] = {}
            for side in unique:
                if side[1] in marked:
                    bad[side] = marked[side[1]]
                elif self._lifecycle.is_archived(side) or self._lifecycle.is_merged(side):
                    # What HubSpot answers for a deleted record (docs/reference/hubspot.md §9.3); a merged id
                    # gets here only under merged_ids "invalid" (with "alias", resolve() replaced it).
                    bad[side] = 400
                elif not self._exists(self._lifecycle.resolve(side), now, strict=strict):
                    bad[side] = 404
            return bad

    def resolve_ids(self, object_type: str, ids: Sequence[str]) -> list[str]:
        """``ids`` with merged-away ones replaced by the id they point to, when ``merged_ids`` is ``alias``."""
        with self._lock:
            if not self._lifecycle or self._config.merged_ids != "alias":
                return list(ids)
            return [self._lifecycle.resolve((object_type, i))[1] for i in ids]

    def _exists(self, side: Side, now: float, *, strict: bool) -> bool:
        record = self._records.get(side)
        if record is None:
            synthetic = self._synthetic.get(side[0])
            return not strict or (synthetic is not None and synthetic.has(side[1]))
        if side in self._hidden:
            if not record.is_visible(now):
                return False
            self._hidden.discard(side)
        return True

    def read_archived(self, object_type: str, object_id: str) -> dict[str, Any] | None:
        """A deleted record as ``?archived=true`` answers it (HubSpot returns only archived records then), or None."""
        with self._lock:
            if not self._lifecycle.is_archived((object_type, object_id)):
                return None
        return {"id": object_id, "properties": {"hs_object_id": object_id}, "archived": True}

    def read_record(self, object_type: str, object_id: str, wanted: Sequence[str]) -> dict[str, Any] | None:
        """A record's ``SimplePublicObject`` JSON (only the ``wanted`` properties, if any), or None."""
        with self._lock:
            if self._lifecycle.is_archived((object_type, object_id)):
                return None
            object_type, object_id = self._lifecycle.resolve((object_type, object_id))  # old ids read the new one
            record = self._records.get((object_type, object_id))
            if record is None:
                synthetic = self._synthetic.get(object_type)
                if synthetic is not None and synthetic.has(object_id):
                    return synthetic.record(object_id).view(wanted)
                return None
            if not record.is_visible(self._clock()):
                return None
            return record.view(wanted)

    def search(self, object_type: str, query: SearchQuery) -> dict[str, Any]:
        """Search the records of ``object_type``; ids marked invalid are not visible to search yet.

        Raises ValueError for a query synthetic records cannot answer (see ``SyntheticRecords``).
        """
        with self._lock:
            now = self._clock()
            synthetic = self._synthetic.get(object_type)
            if synthetic is not None:
                seeded = {rid: r for (rtype, rid), r in self._records.items() if rtype == object_type}
                return synthetic.search(query, seeded)
            found = []
            for (rtype, rid), record in self._records.items():
                visible = rtype == object_type and record.is_visible(now) and not self._invalid.is_invalid(rid, now)
                if visible and query.matches(record.all_properties()):
                    found.append(record)
            return query.page(found)

    def records_json(self) -> dict[str, Any]:
        """``GET /_sim/records``."""
        with self._lock:
            return {
                "records": [
                    {"objectType": rtype, "id": rid, "properties": dict(record.properties)}
                    for (rtype, rid), record in self._records.items()
                ]
            }

    # --- invalid ids ---

    def mark_invalid(
        self, ids: Iterable[str], status: int, *, ttl_requests: int | None = None, until: float | None = None
    ) -> None:
        """Make ``ids`` answer ``status`` (400 invalid, 404 not found) in association calls, 404 in reads.

        With ``ttl_requests`` an id turns valid once that many requests have named it (a request counts
        once however often it names the id); with ``until`` (epoch seconds) it turns valid then; with both,
        whichever comes first; with neither it stays invalid until cleared or reset.
        """
        with self._lock:
            self._invalid.mark(ids, status, ttl_requests, until)

    def clear_invalid(self) -> None:
        """``DELETE /_sim/invalid-ids``: every id valid again."""
        with self._lock:
            self._invalid.clear()

    def invalid_json(self) -> dict[str, Any]:
        """``GET /_sim/invalid-ids``."""
        with self._lock:
            return self._invalid.as_json(self._clock())

    def screen(self, ids: Iterable[str]) -> dict[str, int]:
        """The ids of one request that are invalid now, with their status; counts the request against each."""
        with self._lock:
            return self._invalid.screen(ids, self._clock())

    # --- associations and the request log ---

    def associate(self, keys: Iterable[AssociationKey]) -> None:
        """Record default associations given as keys (types as spelled): a convenience for tests.

        Pairs without a HubSpot default get a made-up type id, so that any key can be recorded.
        """
        for from_raw, from_id, to_raw, to_id in keys:
            types = (canonical_type(from_raw) or from_raw, canonical_type(to_raw) or to_raw)
            with self._lock:
                forward = default_type_id(*types, self._custom_types) or made_up_type_id(*types)
                backward = default_type_id(types[1], types[0], self._custom_types) or made_up_type_id(
                    types[1], types[0]
                )
            self.link(
                (from_raw, to_raw),
                types,
                [(from_id, to_id)],
                ("HUBSPOT_DEFINED", forward),
                ("HUBSPOT_DEFINED", backward),
            )

    def link(
        self,
        spelled: tuple[str, str],
        types: tuple[str, str],
        pairs: Sequence[tuple[str, str]],
        forward: Spec,
        backward: Spec,
    ) -> None:
        """Associate ``pairs`` with type ``forward`` (``backward`` the other way); see ``AssociationStore.add``."""
        with self._lock:
            self._associations.add(spelled, types, pairs, forward, backward, self._clock())

    def write(
        self,
        spelled: tuple[str, str],
        types: tuple[str, str],
        inputs: Sequence[WriteInput],
        caller: Caller | None = None,
    ) -> list[dict[str, Any] | None]:
        """Associate each input as HubSpot does (``association_writes.py``): per input None or its refusal.

        Changes fired (association changes of ``caller``'s portal and app) are pushed and journalled.
        """
        with self._lock:
            now = self._clock()
            writer = None
            if self._listening():
                portal = caller.portal_id if caller is not None else None
                app_id = caller.app_id if caller is not None else None
                writer = Writer(portal if portal is not None else self._config.portal_id, app_id)
            association_writer = AssociationWriter(self._associations, self._labels, self._custom_types, self._limits)
            outcomes, changes = association_writer.write(spelled, types, inputs, now, writer)
            apps, gone = self._oauth.apps(), self._oauth.uninstalled()
        self.notifier.notify(changes, apps, gone)
        return outcomes

    def unlink(
        self, from_type: str, to_type: str, pairs: Iterable[tuple[str, str]], caller: Caller | None = None
    ) -> int:
        """Remove the associations of ``pairs`` entirely (both ways); returns how many there were.

        Each type removed fires its ``associationChange`` (removed) as ``caller``'s, as a write does.
        """
        with self._lock:
            before = self._held(from_type, to_type, pairs)
            removed = sum(self._associations.remove((from_type, f, to_type, t)) for f, t in pairs)
            changes = self._removals(before, caller)
            apps, gone = self._oauth.apps(), self._oauth.uninstalled()
        self.notifier.notify(changes, apps, gone)
        return removed

    def unlink_types(
        self,
        from_type: str,
        to_type: str,
        pairs: Iterable[tuple[str, str]],
        specs: Sequence[Spec],
        caller: Caller | None = None,
    ) -> None:
        """Remove the types ``specs`` from ``pairs`` (their reverses too). Raises ValueError for an unknown type.

        Removing the unlabelled type removes the association, labels and all, as it does in HubSpot. Each type
        removed fires its ``associationChange`` as ``caller``'s.
        """
        with self._lock:
            backward = [self._labels.reverse(from_type, to_type, spec, self._custom_types) for spec in specs]
            default = default_type_id(from_type, to_type, self._custom_types)
            pairs = list(pairs)
            before = self._held(from_type, to_type, pairs)
            for from_id, to_id in pairs:
                if ("HUBSPOT_DEFINED", default) in specs:
                    self._associations.remove((from_type, from_id, to_type, to_id))
                    continue
                self._associations.remove_types((from_type, from_id, to_type, to_id), specs, backward)
            changes = self._removals(before, caller)
            apps, gone = self._oauth.apps(), self._oauth.uninstalled()
        self.notifier.notify(changes, apps, gone)

    def _held(
        self, from_type: str, to_type: str, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str, str, str], set[Spec]]:
        """The types each pair holds now, when someone listens for changes (else nothing: the hot path)."""
        if not self._listening():
            return {}
        return {(from_type, f, to_type, t): self._associations.types((from_type, f, to_type, t)) for f, t in pairs}

    def _removals(self, before: dict[tuple[str, str, str, str], set[Spec]], caller: Caller | None) -> list[Change]:
        """The changes of the types held ``before`` and gone now."""
        if not before:
            return []
        portal = caller.portal_id if caller is not None and caller.portal_id is not None else self._config.portal_id
        writer = Writer(portal, caller.app_id if caller is not None else None)
        now = self._clock()
        changes = []
        for direction, held in before.items():
            for spec in sorted(held - self._associations.types(direction)):
                back = self._labels.reverse_held(direction[0], direction[2], spec, self._custom_types)
                changes.extend(changed(direction, spec, back, now, writer, removed=True))
        return changes

    def reverse_spec(self, from_type: str, to_type: str, spec: Spec) -> Spec:
        """The type of the other direction. Raises ValueError when ``spec`` is not a type of the pair."""
        with self._lock:
            return self._labels.reverse(from_type, to_type, spec, self._custom_types)

    def associated(self, object_type: str, object_id: str, to_type: str) -> list[dict[str, Any]]:
        """The ``MultiAssociatedObjectWithLabel`` entries of one record towards ``to_type``."""
        with self._lock:
            return [
                {
                    "toObjectId": to_id,
                    "associationTypes": self._describe((object_type, object_id, to_type, to_id), specs),
                }
                for to_id, specs in self._associations.associated(object_type, object_id, to_type)
            ]

    def labels_between(self, direction: tuple[str, str, str, str]) -> list[str]:
        """The label names (labelled types only) of one direction, sorted."""
        with self._lock:
            described = self._describe(direction, self._associations.types(direction))
            return sorted(str(d["label"]) for d in described if "label" in d)

    def label_definitions(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        """``GET .../associations/{from}/{to}/labels`` (v4, 2026-03): every type of the pair, HubSpot's first."""
        with self._lock:
            return [d.as_dict() for d in self._labels.definitions(from_type, to_type, self._custom_types)]

    def create_label(self, from_type: str, to_type: str, label: str, inverse_label: str | None) -> list[dict[str, Any]]:
        """``POST /_sim/labels``: a USER_DEFINED label and its inverse. Raises ValueError for a repeated name."""
        with self._lock:
            return [d.as_dict() for d in self._labels.create(from_type, to_type, label, inverse_label)]

    def _describe(self, direction: tuple[str, str, str, str], specs: Iterable[Spec]) -> list[dict[str, Any]]:
        from_type, _, to_type, _ = direction
        described = []
        for spec in sorted(specs, key=lambda s: (s[0], s[1])):
            found = self._labels.find(from_type, to_type, spec, self._custom_types)
            described.append(found.as_dict() if found else {"category": spec[0], "typeId": spec[1]})
        return described

    def log(
        self,
        *,
        method: str,
        path: str,
        status: int,
        endpoint: str,
        token: str | None,
        inputs: int = 0,
        correlation_id: str | None = None,
    ) -> None:
        """Count one API request; its ``inputs`` (association pairs) add to ``inputs_total`` on a 200."""
        with self._lock:
            entry = {"method": method, "path": path, "status": status, "at": self._clock(), "endpoint": endpoint}
            self._log.record({**entry, "inputs": inputs, "correlation_id": correlation_id}, token)

    def associations_json(self, since: int = 0) -> dict[str, Any]:
        """``GET /_sim/associations``: every association after the first ``since``, in first-seen order."""
        with self._lock:
            return self._associations.listing(since, self._describe)

    def requests_json(self) -> dict[str, Any]:
        """``GET /_sim/requests``."""
        with self._lock:
            return self._log.as_dict()

    def merge(self, object_type: str, primary_id: str, merged_ids: Sequence[str], portal_id: int | None) -> str:
        """``POST /_sim/merge``: a new record from the primary and merged ones; returns its id.

        Raises ValueError naming an id that is archived, already merged, repeated, or (``records: strict``)
        unknown.
        """
        with self._lock:
            now = self._clock()
            old_ids = [primary_id, *merged_ids]
            if len(set(old_ids)) != len(old_ids):
                raise ValueError("mergedObjectIds: the primary and merged ids must all differ")
            strict = self._config.records == "strict"
            for old_id in old_ids:
                side = (object_type, old_id)
                if self._lifecycle.is_archived(side) or self._lifecycle.is_merged(side):
                    raise ValueError(f"{object_type} {old_id} is deleted or already merged")
                if not self._exists(side, now, strict=strict):
                    raise ValueError(f"{object_type} {old_id} does not exist (records: strict)")
            new_id = self._lifecycle.mint(object_type, self._records)
            properties: dict[str, str | None] = {}
            for old_id in reversed(old_ids):  # the primary's values win
                old = self._records.pop((object_type, old_id), None)
                if old is not None:
                    properties.update(old.properties)
            self._records[(object_type, new_id)] = Record(new_id, properties, now, now)
            self._lifecycle.merge(
                object_type, old_ids, new_id, self._associations, self._labels, self._custom_types, now
            )
            portal = portal_id if portal_id is not None else self._config.portal_id
            changes = []
            if self._listening():
                fields = {
                    "primaryObjectId": int(primary_id),
                    "mergedObjectIds": [int(i) for i in merged_ids],
                    "newObjectId": int(new_id),
                    "numberOfPropertiesMoved": len(properties),
                }
                changes.append(Change("merge", object_type, new_id, portal, now, "CRM", None, fields))
                changes.extend(Change("deletion", object_type, i, portal, now) for i in merged_ids)
            apps, gone = self._oauth.apps(), self._oauth.uninstalled()
        self.notifier.notify(changes, apps, gone)
        return new_id

    def delete(self, object_type: str, ids: Sequence[str], *, privacy: bool, portal_id: int | None) -> int:
        """``POST /_sim/records/delete``: archive records, drop their associations; returns how many.

        Fires ``deletion`` (and with ``privacy``, contacts only, ``privacyDeletion``) changes. Raises
        ValueError for ``privacy`` on another type, or (``records: strict``) an unknown id.
        """
        if privacy and object_type != "contacts":
            raise ValueError(f"privacy: only contacts have privacy deletions, got objectType {object_type!r}")
        with self._lock:
            now = self._clock()
            strict = self._config.records == "strict"
            fresh = [i for i in dict.fromkeys(ids) if not self._lifecycle.is_archived((object_type, i))]
            for object_id in fresh:
                side = (object_type, object_id)
                if self._lifecycle.is_merged(side) or not self._exists(side, now, strict=strict):
                    raise ValueError(f"{object_type} {object_id} does not exist or was merged")
            for object_id in fresh:
                self._records.pop((object_type, object_id), None)
                self._lifecycle.archive((object_type, object_id), self._associations)
            portal = portal_id if portal_id is not None else self._config.portal_id
            changes = []
            if self._listening():
                for object_id in fresh:
                    changes.append(Change("deletion", object_type, object_id, portal, now))
                    if privacy:
                        changes.append(Change("privacyDeletion", object_type, object_id, portal, now))
            apps, gone = self._oauth.apps(), self._oauth.uninstalled()
        self.notifier.notify(changes, apps, gone)
        return len(fresh)

    def lifecycle_json(self) -> dict[str, Any]:
        """``GET /_sim/lifecycle``: merged ids with the id they point to, archived ids."""
        with self._lock:
            return self._lifecycle.as_json()


def _windows(limit: RateLimit | None) -> RollingWindows | None:
    return RollingWindows(limit) if limit is not None else None


def _daily(config: Config) -> DailyCounters | None:
    limit = config.daily()
    return DailyCounters(limit) if limit is not None else None


def _account(window_key: str) -> str:
    """The account a window key belongs to: an OAuth portal, or the one account of static tokens."""
    return window_key if window_key.startswith("portal:") else STATIC_ACCOUNT
