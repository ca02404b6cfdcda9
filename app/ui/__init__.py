"""The dashboard's static files (static/: HTML, JS, CSS), served by app/api/routes/ui.py with no build step."""
