"""The Lua scripts in ``hublink/store/lua/``, registered once per Redis connection.

Each script file starts with its KEYS/ARGV header and the atomic guarantee it gives. redis-py's
``Script`` sends EVALSHA and falls back to loading the script after a restart (NOSCRIPT). Functions two
scripts share live in a ``lib_*.lua`` file, pasted where a script says ``-- include: lib_<name>`` (Redis
scripts cannot load one another).
"""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "settle",
    "finish",
    "sweep",
    "rate_limit",
    "rate_observe",
    "rate_block",
    "set_aside",
    "idempotent_add",
    "throttle_take",
    "throttle_refund",
    "resume",
    "history_add",
    "history_find",
    "journal_advance",
    "rules_publish",
    "history_erase",
)


#: A line that pastes a library file in its place.
_INCLUDE = re.compile(r"^-- include: (lib_[a-z_]+)$", re.MULTILINE)


def _source(name: str) -> str:
    """The script's text, each ``-- include: lib_<name>`` line replaced by that file."""
    text = (resources.files("hublink.store") / "lua" / f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: _source(m.group(1)), text)


class Scripts:
    """The registered scripts of one connection, as attributes named after their files."""

    enqueue: Script
    claim: Script
    settle: Script
    finish: Script
    sweep: Script
    rate_limit: Script
    rate_observe: Script
    rate_block: Script
    set_aside: Script
    idempotent_add: Script
    throttle_take: Script
    throttle_refund: Script
    resume: Script
    history_add: Script
    history_find: Script
    journal_advance: Script
    rules_publish: Script
    history_erase: Script

    def __init__(self, redis: Redis) -> None:
        for name in SCRIPT_NAMES:
            setattr(self, name, redis.register_script(_source(name)))
