"""crmbridge connector and sandbox for HubSpot."""
