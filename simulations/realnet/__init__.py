"""Real doq processes on a real (virtual) network under faults: each node in its own network
namespace, a nemesis that kills, pauses, cuts, drops, skews and fills, clients that record every
operation, and checkers over what they saw (docs/reliability.md). Linux and root only."""
