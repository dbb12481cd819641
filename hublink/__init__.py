"""HubLink's shared core: imported by ``web`` and ``worker``, importing neither.

``__version__`` is the one place the version is written (pyproject.toml reads it, the CLI and the
HubSpot client's User-Agent show it).
"""

__version__ = "0.2.0"
