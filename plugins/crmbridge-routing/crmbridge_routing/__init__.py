"""crmbridge-routing: territory and round-robin routing of the leads crmbridge hands to sales.

Installed, it does nothing until ``CRMBRIDGE_ROUTING__TERRITORIES`` or
``CRMBRIDGE_ROUTING__DEFAULT_QUEUE`` is set; see the README.
"""

from __future__ import annotations

from crmbridge_routing.plugin import RoutingPlugin, plugin
from crmbridge_routing.rotation import Rotation
from crmbridge_routing.settings import RoutingSettings

__version__ = "0.1.0"
__all__ = ["Rotation", "RoutingPlugin", "RoutingSettings", "__version__", "plugin"]
