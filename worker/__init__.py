"""The worker process: RQ workers that drain lanes into HubSpot (entry point: ``python -m worker``)."""
