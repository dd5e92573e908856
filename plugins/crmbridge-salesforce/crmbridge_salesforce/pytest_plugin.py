"""pytest fixtures for the Salesforce sandbox (entry point ``pytest11``)."""
