"""A HubSpot API simulator: a real HTTP server speaking HubSpot's contract, with a control API for tests.

It imports nothing from HubLink and nothing outside the standard library. See README.md beside this file.
In Python: ``url = SimServer(SimState(tokens=["t"])).start()`` ... ``stop()``.
"""

from hubspot_sim.rate_limits import RateLimit
from hubspot_sim.server import SimServer
from hubspot_sim.state import SimState

__all__ = ["RateLimit", "SimServer", "SimState"]
