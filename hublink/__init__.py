"""HubLink's shared core: imported by ``web`` and ``worker``, importing neither."""

__version__ = "0.1.0"
