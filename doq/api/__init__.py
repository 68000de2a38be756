"""The REST API: Quart-Trio routes, schemas, problem+json errors, OpenAPI.

``create_app(service, settings)`` builds the app of one node; the launcher serves it with
Hypercorn in the node's nursery."""

from doq.api.app import create_app
from doq.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
