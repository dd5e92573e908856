"""The crmbridge Salesforce plugin: registers the connector and the sandbox emulator."""
