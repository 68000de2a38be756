"""The REST API: Quart-Trio routes, schemas, problem+json errors, OpenAPI."""
