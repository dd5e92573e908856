"""The crmbridge HubSpot plugin: registers the connector and the sandbox emulator."""
