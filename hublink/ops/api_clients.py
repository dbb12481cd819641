"""API clients: named callers of the HTTP API, each with its own scopes and its own bearer tokens, stored hashed.

A token reads ``hl_<id>_<secret>``: ``hl_`` says what it is (a secret scanner, a log reader and HubLink
itself tell it from other credentials), ``<id>`` (16 hex digits) names the one Redis hash to read, so a
lookup is one HGETALL whatever the number of clients, and ``<secret>`` is 256 random bits. Redis keeps
only the SHA-256 of the whole token, compared in constant time.

Why a plain SHA-256 and not a slow password hash (bcrypt, scrypt, Argon2): those are slow so that guessing
a *human-chosen* password from its stolen hash costs a lot per guess. A token of 256 random bits cannot
be guessed however fast the hash is (2^256 tries), so slowness buys nothing and would cost every API
request tens of milliseconds of CPU. GitHub, PyPI and Stripe store their random API tokens the same way.

Rotation without downtime: :meth:`ApiClientStore.rotate` issues a second token and gives the current one
an end (the rotation window); both open the API until then, so a caller switches at its own pace. The
old token's hash expires with it (PEXPIREAT), or goes at once with :meth:`ApiClientStore.revoke_old`.
A second rotation is refused while one is under way: a third token would cut off a caller still on
the first.

Last use is written at most once a minute per token and process (:meth:`ApiClientStore.touch`), not
once per request: the API's hot path stays one read.

Keys owned here (see ``hublink.store.keys``): ``apiclient:<name>``, ``apiclients``, ``apitoken:<id>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from redis import Redis

from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

#: What every API client token starts with.
TOKEN_PREFIX = "hl_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"\Ahl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")
#: A client's name: what the audit log, ``list`` and the URLs show.
NAME = re.compile(r"\A[a-z0-9][a-z0-9_.-]{0,63}\Z")
#: The built-in clients' names (``HUBLINK_API_TOKEN``, ``HUBLINK_ADMIN_TOKEN``): never an API client's.
RESERVED_NAMES = frozenset({"api", "admin"})
#: A last use is written at most this often per token and process.
TOUCH_EVERY_S = 60.0
#: The longest rotation window: a rotation is a switch-over, not a second permanent token.
MAX_WINDOW_S = 30 * 86_400


class ApiClientError(ValueError):
    """A refused client operation; ``kind``: ``invalid``, ``exists``, ``unknown``, ``rotating``, ``no_old_token``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One of a client's tokens as listed: its id and times, never the token nor its hash."""

    id: str
    created_ms: int
    #: When the token stops opening the API (epoch ms); 0 while it has no end.
    expires_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        """The token's public fields."""
        return {"id": self.id, "created_ms": self.created_ms, "expires_ms": self.expires_ms or None}


@dataclass(frozen=True, slots=True)
class ApiClient:
    """An API client: its name, scopes and times, and its live tokens (one, two during a rotation)."""

    name: str
    scopes: tuple[str, ...]
    created_ms: int
    last_used_ms: int
    tokens: tuple[TokenInfo, ...]

    @property
    def rotating(self) -> bool:
        """True while an old token still opens the API beside the new one."""
        return any(t.expires_ms for t in self.tokens)

    def as_json(self) -> dict[str, Any]:
        """What ``GET /api/api-clients`` and ``list --json`` show: never a token or a hash."""
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "created_ms": self.created_ms,
            "last_used_ms": self.last_used_ms or None,
            "rotating": self.rotating,
            "tokens": [t.as_json() for t in self.tokens],
        }


@dataclass(frozen=True, slots=True)
class Match:
    """A presented token that is live: whose it is, the scopes it holds, and which of the client's tokens."""

    name: str
    scopes: frozenset[str]
    token_id: str


def token_digest(token: str) -> str:
    """The stored form of a token: hex SHA-256 (see the module docstring for why not a slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (id, token): 64 random bits of id, 256 of secret."""
    token_id = secrets.token_hex(8)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


class ApiClientStore:
    """API clients in Redis: create, list, rotate and revoke them, and find a token's client."""

    def __init__(
        self, redis_client: Redis, keys: Keys, *, scopes: Collection[str], clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis_client
        self._keys = keys
        self._scopes = frozenset(scopes)
        self._clock = clock
        #: Token id -> when this process last wrote its client's last use (see :meth:`touch`).
        self._touched: dict[str, float] = {}

    def _pipeline(self) -> Any:
        """A transaction pipeline (typed Any: redis-py's WATCH is untyped)."""
        return self._redis.pipeline(transaction=True)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- checks ---

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not NAME.match(name):
            raise ApiClientError("invalid", "name: expected 1 to 64 of a-z 0-9 _ . - (starting with a letter or digit)")
        if name in RESERVED_NAMES:
            raise ApiClientError("invalid", f"name: {name!r} is a built-in client (HUBLINK_{name.upper()}_TOKEN)")

    def _check_scopes(self, scopes: Collection[str]) -> tuple[str, ...]:
        if not scopes:
            raise ApiClientError("invalid", "scopes: give at least one")
        unknown = sorted(str(s)[:40] for s in scopes if s not in self._scopes)
        if unknown:
            raise ApiClientError("invalid", f"scopes: unknown {unknown}; expected some of {sorted(self._scopes)}")
        return tuple(sorted(set(scopes)))

    # --- reading ---

    def _decode(self, name: str, raw: dict[Any, Any]) -> ApiClient | None:
        if not raw:
            return None
        fields = {text(k): text(v) for k, v in raw.items()}
        now = self._now_ms()
        tokens = tuple(
            TokenInfo(t["id"], int(t["created_ms"]), int(t.get("expires_ms") or 0))
            for t in orjson.loads(fields.get("tokens", "[]"))
            if not t.get("expires_ms") or int(t["expires_ms"]) > now
        )
        return ApiClient(
            name=name,
            scopes=tuple(fields.get("scopes", "").split()),
            created_ms=int(fields.get("created_ms", 0)),
            last_used_ms=int(fields.get("last_used_ms", 0)),
            tokens=tokens,
        )

    def get(self, name: str) -> ApiClient | None:
        """One client, or None."""
        with store_errors():
            raw = self._redis.hgetall(self._keys.api_client(name))
        return self._decode(name, raw)

    def every(self) -> list[ApiClient]:
        """Every client, oldest first."""
        with store_errors():
            names = [text(n) for n in self._redis.zrange(self._keys.api_clients, 0, -1)]
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(self._keys.api_client(name))
            rows = pipe.execute()
        return [c for name, row in zip(names, rows, strict=True) if (c := self._decode(name, row)) is not None]

    def find(self, token: str) -> Match | None:
        """The live client token ``token`` is, or None; one read, a constant-time comparison."""
        found = _TOKEN.match(token)
        if found is None:
            return None
        with store_errors():
            raw = self._redis.hgetall(self._keys.api_token(found.group(1)))
        if not raw:
            return None
        fields = {text(k): text(v) for k, v in raw.items()}
        if not hmac.compare_digest(token_digest(token).encode(), fields.get("sha256", "").encode()):
            return None
        expires_ms = int(fields.get("expires_ms") or 0)
        if expires_ms and expires_ms <= self._now_ms():
            return None  # PEXPIREAT removes it within moments; until then it is refused here
        return Match(fields.get("name", ""), frozenset(fields.get("scopes", "").split()), found.group(1))

    # --- writing ---

    def _token_fields(self, name: str, scopes: tuple[str, ...], token: str, created_ms: int) -> dict[str, Any]:
        return {"name": name, "scopes": " ".join(scopes), "sha256": token_digest(token), "created_ms": created_ms}

    def create(self, name: str, scopes: Collection[str]) -> tuple[ApiClient, str]:
        """A new client and its first token (shown once: only its hash is kept). ApiClientError when refused."""
        self._check_name(name)
        ordered = self._check_scopes(scopes)
        key = self._keys.api_client(name)
        now = self._now_ms()
        token_id, token = new_token()
        tokens = [TokenInfo(token_id, now)]
        with store_errors(), self._pipeline() as pipe:
            try:
                pipe.watch(key)
                if pipe.exists(key):
                    raise ApiClientError("exists", f"an API client named {name!r} exists")
                pipe.multi()
                pipe.hset(
                    key,
                    mapping={"scopes": " ".join(ordered), "created_ms": now, "tokens": _tokens_json(tokens)},
                )
                pipe.zadd(self._keys.api_clients, {name: now})
                pipe.hset(self._keys.api_token(token_id), mapping=self._token_fields(name, ordered, token, now))
                pipe.execute()
            except redis.WatchError:
                raise ApiClientError("exists", f"an API client named {name!r} was created meanwhile") from None
        return ApiClient(name, ordered, now, 0, tuple(tokens)), token

    def _change(self, name: str, change: Callable[[Any, ApiClient], Any]) -> Any:
        """Run ``change(pipe, client)`` in a transaction watching the client's record; retries on a race."""
        key = self._keys.api_client(name)
        with store_errors():
            for _ in range(5):
                with self._pipeline() as pipe:
                    try:
                        pipe.watch(key)
                        client = self._decode(name, pipe.hgetall(key))
                        if client is None:
                            raise ApiClientError("unknown", f"no API client named {name[:64]!r}")
                        pipe.multi()
                        result = change(pipe, client)
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue
        raise ApiClientError("rotating", f"API client {name[:64]!r} kept changing; try again")

    def revoke(self, name: str) -> ApiClient:
        """Delete a client and every token of it: they stop opening the API at once. ApiClientError when unknown."""

        def change(pipe: Any, client: ApiClient) -> ApiClient:
            pipe.delete(self._keys.api_client(name), *(self._keys.api_token(t.id) for t in client.tokens))
            pipe.zrem(self._keys.api_clients, name)
            return client

        result: ApiClient = self._change(name, change)
        return result

    def revoke_old(self, name: str) -> list[str]:
        """End a rotation now: delete every token but the newest; return their ids. ApiClientError when none."""

        def change(pipe: Any, client: ApiClient) -> list[str]:
            old = [t for t in client.tokens if t.expires_ms]
            if not old:
                raise ApiClientError("no_old_token", f"API client {name!r} has no old token (no rotation under way)")
            kept = [t for t in client.tokens if not t.expires_ms]
            pipe.delete(*(self._keys.api_token(t.id) for t in old))
            pipe.hset(self._keys.api_client(name), "tokens", _tokens_json(kept))
            return [t.id for t in old]

        result: list[str] = self._change(name, change)
        return result

    def rotate(self, name: str, window_s: float) -> tuple[ApiClient, str]:
        """A second token for ``name``; the current one keeps working for ``window_s`` seconds, then expires."""
        if not 0 < window_s <= MAX_WINDOW_S:
            raise ApiClientError("invalid", f"window: expected more than 0 and at most {MAX_WINDOW_S // 86_400} days")
        now = self._now_ms()
        ends_ms = now + int(window_s * 1000)
        token_id, token = new_token()

        def change(pipe: Any, client: ApiClient) -> ApiClient:
            if client.rotating:
                raise ApiClientError(
                    "rotating",
                    f"API client {name!r} is rotating already: end it first (revoke {name} --token old) or wait",
                )
            ended = [TokenInfo(t.id, t.created_ms, ends_ms) for t in client.tokens]
            for t in ended:
                pipe.hset(self._keys.api_token(t.id), "expires_ms", ends_ms)
                pipe.pexpireat(self._keys.api_token(t.id), ends_ms)
            pipe.hset(self._keys.api_token(token_id), mapping=self._token_fields(name, client.scopes, token, now))
            tokens = (*ended, TokenInfo(token_id, now))
            pipe.hset(self._keys.api_client(name), "tokens", _tokens_json(tokens))
            return ApiClient(name, client.scopes, client.created_ms, client.last_used_ms, tokens)

        client: ApiClient = self._change(name, change)
        return client, token

    def touch(self, match: Match) -> bool:
        """Record that ``match``'s client was used now: at most once a minute per token and process.

        Returns True when it wrote. The write is skipped when the client was revoked meanwhile (WATCH), so
        a last use never brings a revoked client's record back.
        """
        now = self._clock()
        if now - self._touched.get(match.token_id, float("-inf")) < TOUCH_EVERY_S:
            return False
        self._touched[match.token_id] = now
        key = self._keys.api_client(match.name)
        with store_errors(), self._pipeline() as pipe:
            try:
                pipe.watch(key)
                if not pipe.exists(key):
                    return False
                pipe.multi()
                pipe.hset(key, "last_used_ms", int(now * 1000))
                pipe.execute()
            except redis.WatchError:
                return False
        return True


def _tokens_json(tokens: Collection[TokenInfo]) -> str:
    return orjson.dumps([{"id": t.id, "created_ms": t.created_ms, "expires_ms": t.expires_ms} for t in tokens]).decode()
