"""The analyst's desk: a Dash dashboard on the alert store (``fraudcore[dashboard]``).

Pages: the alert queue (filtered, sorted and paged in the database), an
alert's page (why, the customer's history, related customers, the
decision), the customer explorer, an overview and the model with a
threshold what-if. ``fraudcore serve`` mounts it at ``/dashboard/`` next to
the API; ``fraudcore dashboard --db URL`` serves it alone.

``import fraudcore`` does not import this package; importing it needs Dash.
"""

from fraudcore.dashboard.app import create_dashboard, mount_dashboard, standalone_app
from fraudcore.dashboard.desk import ACTIONS, Desk, Identity, NotAllowed

__all__ = [
    "ACTIONS",
    "Desk",
    "Identity",
    "NotAllowed",
    "create_dashboard",
    "mount_dashboard",
    "standalone_app",
]
