"""Planted bugs: named switches that put a known safety bug back into the core.

Only the simulator (and control tests) turn them on, through ``CoreOptions.plants``, to prove that
its checkers can fail: a checker that never catches its plant checks nothing. Each name says the
rule it breaks; docs/simulations.md lists which seed catches which plant.
"""

from __future__ import annotations

PLANT_COMMIT_PREVIOUS_TERM = "commit_previous_term"  # count replicas for an earlier term's entry
PLANT_ACK_BEFORE_SYNC = "ack_before_sync"  # acknowledge entries before they are durable
PLANT_VOTE_WITHOUT_LOG_CHECK = "vote_without_log_check"  # grant votes without §5.4.1's check
# Send a round's early messages even when its hard state changes term or vote (issue 10 finding 2:
# a single voter that wins inside campaign() speaks for a term it has not yet made durable).
PLANT_EARLY_BEFORE_TERM_SYNC = "early_before_term_sync"
# Keep the reads waiting on a majority when the configuration changes (issue 10 finding 7: a leader
# left the only voter waits for a removed voter's answer that never comes).
PLANT_READS_KEPT_ON_CONFIG_CHANGE = "reads_kept_on_config_change"
CORE_PLANTS = frozenset(
    {
        PLANT_READS_KEPT_ON_CONFIG_CHANGE,
        PLANT_COMMIT_PREVIOUS_TERM,
        PLANT_ACK_BEFORE_SYNC,
        PLANT_VOTE_WITHOUT_LOG_CHECK,
        PLANT_EARLY_BEFORE_TERM_SYNC,
    }
)
