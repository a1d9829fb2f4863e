"""The command-line sync client: keeps a local folder in two-way sync with a
sync server through its public HTTP API (``python -m sync.client --help``),
keeping its own state in ``FOLDER/.sync/``; nothing here imports the
server's modules except ``sync.paths`` for the library's path rules."""
