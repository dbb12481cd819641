"""JSON nesting: how deep a document goes, read from its bytes before any parser or rule recurses over it.

orjson refuses documents nested past 1,024 levels, but code that walks a parsed document (the rules'
JMESPath, the history's encoder) recurses once per level and fails far sooner; so intake refuses a body
nested past :data:`MAX_DEPTH` before it is parsed. HubSpot's events, workflow actions and forms nest a
handful of levels: the limit leaves ample room.
"""

from __future__ import annotations

import re

#: The deepest nesting intake reads (objects and arrays together).
MAX_DEPTH = 64

# A JSON string (escapes included), to be removed so that brackets inside strings do not count.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_OPENERS = frozenset(b"[{")


def is_too_deep(raw: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """True when the JSON text ``raw`` nests objects and arrays more than ``max_depth`` levels.

    Linear in the body's size; a body with no more openers than ``max_depth`` is passed without a scan.
    Malformed text is measured as far as it goes (the parser then refuses it).
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    depth = 0
    for byte in _NOT_BRACKET.sub(b"", _STRING.sub(b"", raw)):
        if byte in _OPENERS:
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False
