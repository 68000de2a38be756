"""The admin web UI in a real browser (docs/ui.md)."""
