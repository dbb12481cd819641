"""How the web process writes JSON: Flask's JSON provider with orjson.

For the intake's speed: the standard library's encoder is a large share of a single-association
request's Python time, and orjson writes the same document several times faster. (Sessions are opened only under the
dashboard's prefix for the same reason: see :mod:`web.admin.sessions`.)
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider

# Flask's provider sorts keys; dates and dataclasses go to its ``default`` so they read as they did.
_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_APPEND_NEWLINE
)


class OrjsonProvider(DefaultJSONProvider):
    """``jsonify`` through orjson: the same document as Flask's default provider writes, several times faster."""

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """Serialize ``args`` or ``kwargs`` as ``jsonify`` does; pretty-printed only in debug mode, as Flask."""
        if (self._app.debug and self.compact is None) or self.compact is False:
            return super().response(*args, **kwargs)  # type: ignore[return-value]
        obj = self._prepare_response_obj(args, kwargs)
        return Response(orjson.dumps(obj, default=self.default, option=_OPTIONS), mimetype=self.mimetype)


def install(app: Flask) -> None:
    """Give ``app`` the JSON provider."""
    app.json = OrjsonProvider(app)
