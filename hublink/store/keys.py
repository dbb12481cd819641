"""Every Redis key HubLink owns, its type, and its lifetime: the map of HubLink's Redis.

All names start with ``Settings.redis_prefix`` (default ``hl:``); RQ keeps its own ``rq:`` keys.
HubLink uses multi-key Lua scripts, as RQ does, so like RQ it does not run on Redis Cluster.

==============================  ======  ======================================================  ==================
key                             type    holds                                                   lifetime
==============================  ======  ======================================================  ==================
``q:<lane>``                    list    fresh work of a lane in the order accepted, each item   while non-empty
                                        the association itself (``hublink.lanes`` member form)
``lane:<lane>``                 zset    a lane's retried or reclaimed work (``hublink.lanes``   while non-empty
                                        member form), scored by due (ms)
``a:<id>``                      hash    an association's state once it has any: attempts, hist  until settled
                                        (JSON list), replays, reclaims; a first attempt has
                                        none
``lanes``                       zset    lanes with work, scored by the earliest time worth a    permanent
                                        drain
``lanejob:<lane>``              string  "a drain for this lane is queued, running or parked"    lease / park
``wake``                        list    lanes to turn into RQ drain jobs (read by every worker) drained at once
``inflight``                    zset    claimed association ids, scored by lease deadline (ms)  until settled
``leased``                      hash    each claimed id's lane and member, to hand it back      until settled
``dl:<id>``                     string  one dead letter (JSON, ``domain.dead_letter`` wire)     retention TTL
``dlq``                         zset    dead-letter ids scored by the time they died (ms)       entries trimmed
``dlq:dropped``                 string  dead letters dropped by the size cap (counter)          permanent
``seen:<digest>``               string  an event already accepted (dedup mark)                  dedup window
``inbox``                       stream  accepted requests waiting for the workers' expanders    until expanded
``inbox:failed``                stream  inbox entries set aside (unreadable), with the reason   ~10,000 kept
``rl:<bucket>``                 zset    requests sent in the rolling window (sliding log)       one window
``rl:<bucket>:block``           string  epoch ms before which nothing may be sent (after 429)   until then
``rl:<bucket>:max``             string  a lower limit learned from X-HubSpot-RateLimit-Max      a minute
``rl:<bucket>:seen``            hash    the last X-HubSpot-RateLimit-* values seen, and when    ten minutes
``lookup:<digest>``             string  a cached rule lookup result (JSON)                      cache TTL
``labels:<pair>``               string  HubSpot's association label definitions for one         label cache TTL
                                        portal|from|to (JSON list of [category, typeId, label])
``token:<portal>``              hash    an OAuth portal's access_token, expires_at (epoch s)    token expiry + 30 d
                                        and the rotated refresh_token; ``refused`` once HubSpot
                                        refused the refresh token (uninstalled), until a probe
``token:<portal>:lock``         string  "one worker is refreshing this portal's token"          15 s
``apptoken:<client>``            hash    the app's client_credentials token (the Webhooks        token expiry
                                        Journal's): access_token, expires_at (epoch s)
``apptoken:<client>:lock``       string  "one worker is fetching the app's token"                15 s
``m:<name>``                    hash    a metric's counters, field = label values               permanent
``ts:<minute>``                 hash    per-minute counters for the dashboard's charts          two hours
``alert:<kind>``                string  an alert of this kind was sent (rate-limits alerts)     alert interval
``alert:dead_letters:seen``     string  the dead-letter count the last alert reported           permanent
``ready``                       string  /readyz's probe write ("Redis takes writes")            10 seconds
``idem:<digest>``               string  an Idempotency-Key's body digest and first answer       24 hours
                                        (JSON)
``session:<id>``                string  one dashboard login (JSON: since, token mark, CSRF      8 hours
                                        token)
``throttle:<scope>``            string  admin login/token attempts in the window (counter; a     one window
                                        right token gives its attempt back)
``backfill:<id>``               hash    one backfill: rule, plan, cursor (last hs_object_id     30 days after its
                                        read), counts, state, cancel flag (JSON fields)         last change
``backfills``                   zset    backfill ids by start time (ms), for the dashboard      newest 100 kept
``hb:<worker>``                string  a worker's last heartbeat (epoch ms), from its          one minute
                                        dispatcher
``alive:<worker>``              channel (pub/sub, not a key) subscribed by the one live         the process's
                                        process holding a worker name; PUBSUB NUMSUB asks       connection
``inbox:excused:<entry>``       string  deliveries of an inbox entry caused by Redis trouble    one day
``paused``                      hash    what is paused: field portal:<p>, lane:<lane> or        until resumed
                                        circuit:<p> (an open circuit), value JSON (since, why)
``rec:<record>``                string  a record's fate (``portal|type/id``) from HubSpot's     a week (deleted),
                                        lifecycle events: ``deleted``, or ``merged:<new id>``   35 days (merged)
                                        (``hublink.intake.record_fates``)
``recs:<portal>``               string  "some record of this portal has a fate" (a claim        35 days
                                        skips reading fates without it)
``circuits``                    hash    each portal's circuit: JSON (state, reason, message,    permanent
                                        opened/closed ms, probes)
``circuit:<portal>:errors``     string  5xx/timeouts in the current circuit window (counter)    one window
``circuit:<portal>:probe``      string  "a probe call is due after this" (one worker probes)    probe interval
``ev:<entry>``                  string  one accepted request and its events' outcomes (JSON)    history window
``evs``                         zset    history entry ids scored by when accepted (ms)          entries trimmed
``evs:bytes``                   string  bytes the history holds, records and index (counter:    permanent
                                        what HUBLINK_HISTORY_MAX_MB caps)
``evs:dropped``                 string  history records dropped by the size cap (counter)       permanent
``evr:<n>``                     zset    bucket n of the record index: members a record's 3-byte  history window
                                        tag + its history entry's packed id, score 0 (linear
                                        hashing on the tag; small buckets stay listpack-encoded)
``evs:index``                   hash    the record index's size: members (n), level, split      history window
``done:<YYYYMMDD>``             hash    associations linked that day (UTC): id -> JSON (when,    history window
                                        first seen, attempts and hist if any), for traces       + a day
``journal:<portal>:offset``     string  the last Webhooks Journal offset whose events are in    permanent
                                        the inbox (advanced by journal_advance.lua)
``journal:<portal>:lock``       string  "this worker polls the portal's journal" (its name)     a few poll
                                                                                                intervals
``audit``                       stream  the audit log: one entry per admin action (at, actor,   HUBLINK_AUDIT_DAYS
                                        action, target, outcome, address)                       (trimmed on write)
``rules:v:<n>``                 hash    version n of the rules document (HUBLINK_RULES_SOURCE=   permanent
                                        redis): text, author, at (ms), comment, diff
``rules:published``             string  the published version's number (the newest version)     permanent
``apiclient:<name>``            hash    an API client: scopes, created_ms, last_used_ms, its    until revoked
                                        token ids (JSON), never a token (``hublink.ops.api_clients``)
``apiclients``                  zset    API client names scored by creation time (ms)           permanent
``apitoken:<id>``               hash    one API client token: its client's name and scopes,     until revoked (or
                                        the token's SHA-256, created_ms, expires_ms             its rotation ends)
==============================  ======  ======================================================  ==================

HubLink also reads two of RQ's own keys (named here so that nothing else spells them): ``rq:queue:<name>``
(list: drain jobs waiting for a worker) and RQ's registries through RQ's API.

"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEDUP_PREFIX = "seen:"


def digest(text: str) -> str:
    """A short stable digest for key names built from untrusted text (bounded length, no separators)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix; construct once from ``Settings.redis_prefix``."""

    prefix: str = "hl:"

    def association(self, association_id: str) -> str:
        """Hash of one association's retry state (attempts, history, replays), once it has any."""
        return f"{self.prefix}a:{association_id}"

    @property
    def association_prefix(self) -> str:
        """Prefix of association hashes (Lua scripts append the id)."""
        return f"{self.prefix}a:"

    def lane(self, lane: str) -> str:
        """Zset of ``lane``'s retried or reclaimed work, scored by when it is due."""
        return f"{self.prefix}lane:{lane}"

    def queue(self, lane: str) -> str:
        """List of ``lane``'s fresh work, oldest first."""
        return f"{self.prefix}q:{lane}"

    @property
    def queue_prefix(self) -> str:
        """Prefix of lane queues (Lua scripts append the lane)."""
        return f"{self.prefix}q:"

    @property
    def lane_prefix(self) -> str:
        """Prefix of lane zsets (Lua scripts append the lane)."""
        return f"{self.prefix}lane:"

    @property
    def lanes(self) -> str:
        """Zset of lanes with work, scored by when they are next worth draining."""
        return f"{self.prefix}lanes"

    def lane_job(self, lane: str) -> str:
        """Marker that a drain for ``lane`` is queued, running or parked."""
        return f"{self.prefix}lanejob:{lane}"

    @property
    def lane_job_prefix(self) -> str:
        """Prefix of lane markers (Lua scripts append the lane)."""
        return f"{self.prefix}lanejob:"

    @property
    def wake(self) -> str:
        """List of lanes that need an RQ drain job."""
        return f"{self.prefix}wake"

    @property
    def inflight(self) -> str:
        """Zset of claimed ids scored by lease deadline."""
        return f"{self.prefix}inflight"

    @property
    def leased(self) -> str:
        """Hash of claimed ids to their lane and member (``lane`` RS ``member``), read by the sweep."""
        return f"{self.prefix}leased"

    def dead_letter(self, association_id: str) -> str:
        """One dead letter's JSON body."""
        return f"{self.prefix}dl:{association_id}"

    @property
    def dead_letter_prefix(self) -> str:
        """Prefix of dead-letter bodies (Lua scripts append the id)."""
        return f"{self.prefix}dl:"

    @property
    def dead_letters(self) -> str:
        """Zset of dead-letter ids scored by time of death (ms)."""
        return f"{self.prefix}dlq"

    @property
    def dead_letters_dropped(self) -> str:
        """Counter of dead letters dropped by the size cap."""
        return f"{self.prefix}dlq:dropped"

    def seen(self, dedup_key: str) -> str:
        """Dedup mark for one event (``dedup_key`` is hashed: it comes from the sender)."""
        return f"{self.prefix}{DEDUP_PREFIX}{digest(dedup_key)}"

    @property
    def inbox(self) -> str:
        """Stream of verified events waiting for the rules (read by the workers' expanders)."""
        return f"{self.prefix}inbox"

    @property
    def inbox_failed(self) -> str:
        """Stream of inbox entries that could not be expanded, kept for inspection."""
        return f"{self.prefix}inbox:failed"

    def rate_window(self, bucket: str) -> str:
        """Sliding-log window of one rate-limit bucket."""
        return f"{self.prefix}rl:{bucket}"

    def rate_block(self, bucket: str) -> str:
        """Time before which a bucket may not send (set after a 429)."""
        return f"{self.prefix}rl:{bucket}:block"

    def rate_learned_max(self, bucket: str) -> str:
        """A lower limit learned from HubSpot's headers."""
        return f"{self.prefix}rl:{bucket}:max"

    def lookup_cache(self, lookup_key: str) -> str:
        """A cached lookup result."""
        return f"{self.prefix}lookup:{digest(lookup_key)}"

    def labels(self, pair: str) -> str:
        """Cached label definitions of one ``portal|from|to`` (canonical types: no digest needed)."""
        return f"{self.prefix}labels:{pair}"

    def oauth_token(self, portal_id: str) -> str:
        """A cached OAuth token for one portal (hash: access_token, expires_at, refresh_token)."""
        return f"{self.prefix}token:{portal_id}"

    def oauth_token_lock(self, portal_id: str) -> str:
        """Held by the one worker refreshing a portal's OAuth token."""
        return f"{self.prefix}token:{portal_id}:lock"

    def app_token(self, client_id: str) -> str:
        """The app's cached client_credentials token (hash: access_token, expires_at), named by a digest."""
        return f"{self.prefix}apptoken:{digest(client_id)[:16]}"

    def app_token_lock(self, client_id: str) -> str:
        """Held by the one worker fetching the app's client_credentials token."""
        return f"{self.prefix}apptoken:{digest(client_id)[:16]}:lock"

    def metric(self, name: str) -> str:
        """Counters of one metric."""
        return f"{self.prefix}m:{name}"

    def series(self, minute: int) -> str:
        """Per-minute dashboard counters for one epoch minute."""
        return f"{self.prefix}ts:{minute}"

    @property
    def series_prefix(self) -> str:
        """Prefix of the per-minute series hashes."""
        return f"{self.prefix}ts:"

    def rate_seen(self, bucket: str) -> str:
        """The last rate-limit headers HubSpot sent for a bucket (for the dashboard's headroom chart)."""
        return f"{self.prefix}rl:{bucket}:seen"

    def alert(self, kind: str) -> str:
        """Last time an alert of ``kind`` was sent."""
        return f"{self.prefix}alert:{kind}"

    @property
    def alert_dead_letters_seen(self) -> str:
        """The dead-letter count the last dead-letter alert reported."""
        return f"{self.prefix}alert:dead_letters:seen"

    @staticmethod
    def rq_queue(queue_name: str) -> str:
        """RQ's own list of jobs waiting in ``queue_name`` (RQ's key: no HubLink prefix)."""
        return f"rq:queue:{queue_name}"

    @property
    def ready_probe(self) -> str:
        """The key /readyz writes (with a short TTL) to learn whether Redis takes writes."""
        return f"{self.prefix}ready"

    def idempotency(self, idempotency_key: str) -> str:
        """One Idempotency-Key of the direct API (hashed: it comes from the caller)."""
        return f"{self.prefix}idem:{digest(idempotency_key)}"

    def session(self, session_id: str) -> str:
        """One dashboard session (the cookie holds only ``session_id``, a random token)."""
        return f"{self.prefix}session:{digest(session_id)}"

    @property
    def session_prefix(self) -> str:
        """Prefix of dashboard sessions (revoking them all scans it)."""
        return f"{self.prefix}session:"

    def backfill(self, backfill_id: str) -> str:
        """One backfill's plan, cursor, counts and state."""
        return f"{self.prefix}backfill:{backfill_id}"

    @property
    def backfills(self) -> str:
        """Backfill ids by start time."""
        return f"{self.prefix}backfills"

    @property
    def paused(self) -> str:
        """Hash of what is paused (fields from :func:`pause_field`), read by claim.lua on every claim."""
        return f"{self.prefix}paused"

    @property
    def circuits(self) -> str:
        """Hash of each portal's circuit (JSON per portal)."""
        return f"{self.prefix}circuits"

    def circuit_errors(self, portal: str) -> str:
        """Counter of a portal's 5xx and timeouts in the current circuit window."""
        return f"{self.prefix}circuit:{portal}:errors"

    def circuit_probe(self, portal: str) -> str:
        """Held between two probes of a portal's open circuit: whoever sets it probes."""
        return f"{self.prefix}circuit:{portal}:probe"

    def history_record(self, entry_id: str) -> str:
        """One accepted request's history record."""
        return f"{self.prefix}ev:{entry_id}"

    @property
    def history_prefix(self) -> str:
        """Prefix of history records (Lua scripts append the entry id)."""
        return f"{self.prefix}ev:"

    @property
    def history(self) -> str:
        """Zset of history entry ids by time accepted."""
        return f"{self.prefix}evs"

    @property
    def history_bytes(self) -> str:
        """Bytes held by the history (records and their index), as its size cap counts them."""
        return f"{self.prefix}evs:bytes"

    @property
    def history_dropped(self) -> str:
        """History records dropped by the size cap."""
        return f"{self.prefix}evs:dropped"

    @property
    def history_index_bucket_prefix(self) -> str:
        """Prefix of the record index's buckets (``evr:<n>``; Lua scripts append the bucket number)."""
        return f"{self.prefix}evr:"

    @property
    def history_index_meta(self) -> str:
        """Hash of the record index's size: ``n`` members, linear hashing's ``level`` and ``split``."""
        return f"{self.prefix}evs:index"

    def done_day(self, day: str) -> str:
        """Hash of the associations linked on ``day`` (``YYYYMMDD``, UTC): id -> compact record."""
        return f"{self.prefix}done:{day}"

    def throttle(self, scope: str) -> str:
        """Failed admin authentications in the current window for ``scope`` (an address, or ``all``)."""
        return f"{self.prefix}throttle:{digest(scope)}"

    def worker_heartbeat(self, worker: str) -> str:
        """A worker's last heartbeat (epoch ms), written by its dispatcher thread; ``worker`` is its name."""
        return f"{self.prefix}hb:{worker}"

    @property
    def worker_heartbeat_prefix(self) -> str:
        """Prefix of worker heartbeats (``python -m worker --check`` scans it when given no name)."""
        return f"{self.prefix}hb:"

    def worker_presence(self, worker: str) -> str:
        """The pub/sub channel a live worker process subscribes to for its name's life (no key is stored)."""
        return f"{self.prefix}alive:{worker}"

    def inbox_excused(self, entry_id: str) -> str:
        """How many deliveries of an inbox entry a Redis outage caused (they do not count towards setting it aside)."""
        return f"{self.prefix}inbox:excused:{entry_id}"

    def journal_offset(self, portal_id: str) -> str:
        """The offset of the last Webhooks Journal entry of ``portal_id`` stored in the inbox."""
        return f"{self.prefix}journal:{portal_id}:offset"

    def record_fate(self, record: str) -> str:
        """What became of a record, named ``<portal>|<type>/<id>`` (portal ``_`` for work naming none)."""
        return f"{self.prefix}rec:{record}"

    def record_fates_seen(self, portal: str) -> str:
        """Set while any record of ``portal`` has a fate."""
        return f"{self.prefix}recs:{portal}"

    @property
    def audit(self) -> str:
        """The audit log's stream (``hublink.ops.audit``)."""
        return f"{self.prefix}audit"

    def rule_version(self, version: int) -> str:
        """Version ``version`` of the rules document (``hublink.intake.rule_versions``)."""
        return f"{self.prefix}rules:v:{version}"

    @property
    def rule_version_prefix(self) -> str:
        """Prefix of rules versions (rules_publish.lua appends the number)."""
        return f"{self.prefix}rules:v:"

    @property
    def rules_published(self) -> str:
        """The published rules version's number: what every process checks, at most once a second."""
        return f"{self.prefix}rules:published"

    def journal_lock(self, portal_id: str) -> str:
        """Which worker polls ``portal_id``'s Webhooks Journal (one at a time)."""
        return f"{self.prefix}journal:{portal_id}:lock"

    def api_client(self, name: str) -> str:
        """One API client's record: its scopes, times and token ids (``hublink.ops.api_clients``)."""
        return f"{self.prefix}apiclient:{name}"

    @property
    def api_clients(self) -> str:
        """Zset of API client names scored by creation time (ms)."""
        return f"{self.prefix}apiclients"

    def api_token(self, token_id: str) -> str:
        """One API client token, found by the id its text carries (``hl_<id>_<secret>``): stored hashed."""
        return f"{self.prefix}apitoken:{token_id}"


#: The scopes a pause can name: a portal, a lane, or a portal's open circuit (set by the circuit breaker).
PAUSE_SCOPES = ("portal", "lane", "circuit")


def pause_field(scope: str, name: str) -> str:
    """The ``paused`` hash field for ``scope`` (one of :data:`PAUSE_SCOPES`) and a portal or lane name."""
    if scope not in PAUSE_SCOPES:
        raise ValueError(f"scope: expected one of {PAUSE_SCOPES}, got {scope!r}")
    return f"{scope}:{name}"


#: How long an Idempotency-Key holds its first answer (``idem:<digest>``): a day of retries.
IDEMPOTENCY_TTL_S = 86_400
#: How long a dashboard login lasts, used or not (``session:<id>``).
SESSION_TTL_S = 8 * 3600
#: How long /readyz's probe key lives (``ready``).
READY_PROBE_TTL_S = 10
