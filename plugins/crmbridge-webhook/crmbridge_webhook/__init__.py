"""crmbridge-webhook: posts SLA breaches and a digest of rejected leads as signed JSON.

Installed, it does nothing until ``CRMBRIDGE_WEBHOOK__URL`` is set; see the README.
"""

from __future__ import annotations

from crmbridge_webhook.delivery import Delivery, WebhookClient, signature
from crmbridge_webhook.plugin import WebhookPlugin, plugin
from crmbridge_webhook.settings import WebhookSettings

__version__ = "0.1.0"
__all__ = [
    "Delivery",
    "WebhookClient",
    "WebhookPlugin",
    "WebhookSettings",
    "__version__",
    "plugin",
    "signature",
]
