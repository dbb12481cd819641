"""A HubSpot API simulator: a real HTTP server speaking HubSpot's contract, with a control API for tests.

It imports nothing from HubLink. See README.md beside this file.
"""

from hubspot_sim.server import SimServer
from hubspot_sim.state import SimState

__all__ = ["SimServer", "SimState"]
