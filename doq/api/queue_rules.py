"""Two rules a queue's creation and settings must follow that the request schemas cannot say.

Why a module of its own: both were found by trying the API as a new user would (issue 11, §5),
and both are checked before a command is proposed, never by the state machine, so that a log
written before the rules existed still replays to the same state.

- A queue's name must round-trip through a URL path: every other route addresses the queue as
  ``/API/v1/queues/{queue_name}/...``, and ``/`` separates path segments (even sent as ``%2F``: the
  server decodes the path before routing), while ``.`` and ``..`` are removed by clients and
  proxies that normalise paths. Such a name used to be created (200) and then could never be
  addressed again, nor deleted. Any other character round-trips when percent-encoded.
- A delayed queue has no groups: ``strategy`` and ``max_unacked`` are fair-queue settings, and
  they used to be accepted and silently not applied. The Go server answers 409; so does doq.
"""

from __future__ import annotations

from doq.api.problems import ApiProblem, validation_problem
from doq.api.schemas import QueueSettingsInput
from doq.commands import QueueType

QUEUE_NAME_RULE = (
    "a queue name must round-trip through a URL path: it cannot contain '/' "
    "(nor '%2F', which the server decodes to '/'), and cannot be '.' or '..'"
)
_DOT_SEGMENTS = frozenset({".", ".."})
NAME_VALUE_CHARS_MAX = 64  # how much of a refused name the problem quotes back


def check_new_queue_name(name: str) -> str:
    """``name`` if a queue may be created with it, else a 422 that states the rule."""
    if "/" in name or name in _DOT_SEGMENTS:
        raise validation_problem(QUEUE_NAME_RULE, "body.name", name[:NAME_VALUE_CHARS_MAX])
    return name


def fair_only_settings(settings: QueueSettingsInput) -> list[str]:
    """The settings given that only a fair queue has (``max_unacked: 0`` is the default and
    means "no limit", so it is not one: the Go server accepts it too)."""
    given = []
    if settings.strategy is not None:
        given.append("strategy")
    if settings.max_unacked:
        given.append("max_unacked")
    return given


def check_settings_for_type(queue_type: QueueType, settings: QueueSettingsInput) -> None:
    """409 for fair-only settings on a delayed queue, as the Go server answers."""
    if queue_type is not QueueType.DELAYED:
        return
    given = fair_only_settings(settings)
    if given:
        raise ApiProblem(
            409,
            f"a delayed queue has no groups: {' and '.join(given)} "
            f"{'is a setting' if len(given) == 1 else 'are settings'} of fair queues only",
        )
