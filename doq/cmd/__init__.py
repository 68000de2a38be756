"""``doq``'s command-line client: queues, messages and the cluster from a shell (doq/cmd/main.py),
online through the API or offline on a stopped node's data directory (docs/client.md)."""

COMMANDS = frozenset(
    {
        "queues",
        "send",
        "recv",
        "ack",
        "nack",
        "touch",
        "get",
        "delete",
        "cluster",
        "backup",
        "restore",
    }
)
