"""pytest fixtures for the HubSpot sandbox (entry point ``pytest11``)."""
