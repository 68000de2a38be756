"""What the routes share: the service, the settings, the rate tracker, the dispatcher (and through
it the one serve decision), the metrics and the request recorder every front uses. One value built
by ``create_app`` and handed to each group of routes and to the fast path."""

from __future__ import annotations

import attrs

from doq.api.dispatch import Dispatcher
from doq.api.serving import RequestMetrics
from doq.api.settings import ApiSettings
from doq.longpoll import ReadyWaits
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
    requests: RequestMetrics
    waits: ReadyWaits
