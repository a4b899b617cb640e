"""The server around the app: gunicorn hooks, the inline backstop's watchdog, and what a stop must drain."""
