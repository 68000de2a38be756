"""The admin web UI's static files (``static/``): a framework-free page served at ``/`` by every
node (doq/api/routes_ui.py), with no build step and nothing loaded from elsewhere; docs/ui.md."""
