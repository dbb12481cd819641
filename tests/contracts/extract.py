"""Write the contract files in this folder from HubSpot's OpenAPI specs: their component schemas, without prose.

    python tests/contracts/extract.py /path/to/openapi/folder

The tests validate answers and requests against ``#/components/schemas/<Name>`` only, so each file keeps
``openapi``, the ``info`` title and version, and every component schema; the paths, servers, tags and the
schemas' descriptions and examples are left out (validation never reads them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FILES = (
    "crm-associations-2026-03.json",
    "crm-objects-2026-03.json",
    "oauth-2026-03.json",
    "webhooks-2026-03.json",
)
PROSE = frozenset({"description", "example", "examples"})


def schema(node: Any) -> Any:
    """``node`` without prose keywords, walking only the places where JSON Schema nests schemas."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in PROSE:
            continue
        if key == "properties":
            out[key] = {name: schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = schema(value)
        elif key in ("oneOf", "anyOf", "allOf"):
            out[key] = [schema(sub) for sub in value]
        else:
            out[key] = value
    return out


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The parts of one spec the contract tests read."""
    return {
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "components": {"schemas": {name: schema(s) for name, s in spec["components"]["schemas"].items()}},
    }


def main(source: Path) -> None:
    """Rewrite each contract file from the spec of the same name under ``source``."""
    for name in FILES:
        spec = json.loads((source / name).read_text(encoding="utf-8"))
        text = json.dumps(extract(spec), indent=1, sort_keys=True) + "\n"
        (HERE / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
