"""crmbridge connector and sandbox for Salesforce."""
