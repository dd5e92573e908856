"""Tools for testing crmbridge and its plugins: the sandbox, fixtures, the conformance suite."""
