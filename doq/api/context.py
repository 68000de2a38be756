"""What the routes share: the service, the settings, the rate tracker, the dispatcher and the
metrics of one node. One value built by ``create_app`` and handed to each group of routes."""

from __future__ import annotations

import attrs

from doq.api.dispatch import Dispatcher
from doq.api.settings import ApiSettings
from doq.metrics import Metrics
from doq.rates import RateTracker
from doq.service import QueueService


@attrs.define
class ApiContext:
    service: QueueService
    settings: ApiSettings
    rates: RateTracker
    dispatcher: Dispatcher
    metrics: Metrics
