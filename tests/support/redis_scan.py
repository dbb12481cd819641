"""Every key and value under a prefix, as text: what a privacy test searches for a person's id and email."""

from __future__ import annotations

import json
from collections.abc import Iterator

import redis as redis_lib

from hublink.intake.history import decode_record


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def everything(redis: redis_lib.Redis, prefix: str = "hl:") -> Iterator[tuple[str, str]]:
    """(key, one of its values as text) for every key under ``prefix``, whatever its type.

    History records are stored compressed: they are decoded, so that what they hold is searched, not
    their zlib bytes. Key names are yielded too (with the value ``<key>``).
    """
    for raw_key in redis.scan_iter(match=prefix + "*", count=1000):
        key = _text(raw_key)
        yield key, "<key>"
        kind = _text(redis.type(raw_key))
        if kind == "string":
            value = redis.get(raw_key) or b""
            if key.startswith(prefix + "ev:"):
                yield key, json.dumps(decode_record(value))
            else:
                yield key, _text(value)
        elif kind == "hash":
            for field, value in redis.hgetall(raw_key).items():
                yield key, _text(field) + "=" + _text(value)
        elif kind == "list":
            for value in redis.lrange(raw_key, 0, -1):
                yield key, _text(value)
        elif kind == "set":
            for value in redis.smembers(raw_key):
                yield key, _text(value)
        elif kind == "zset":
            for value in redis.zrange(raw_key, 0, -1):
                yield key, _text(value)
        elif kind == "stream":
            for entry_id, fields in redis.xrange(raw_key, "-", "+"):
                for field, value in fields.items():
                    yield key, f"{_text(entry_id)} {_text(field)}=" + _text(value)
        else:
            raise AssertionError(f"{key}: a type this scan does not read ({kind})")


def traces_of(redis: redis_lib.Redis, needles: list[str], prefix: str = "hl:") -> list[tuple[str, str]]:
    """Every (key, value) under ``prefix`` holding one of ``needles`` (case-insensitive), in key or value."""
    lowered = [n.lower() for n in needles]
    return [
        (key, value[:200])
        for key, value in everything(redis, prefix)
        if any(n in key.lower() or n in value.lower() for n in lowered)
    ]
