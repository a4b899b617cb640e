"""The server around the app: lifecycle, the file watcher, gunicorn hooks, the backstop watchdog, draining."""
