"""What an operator runs: the `footfall` command, serving, reaching a running server, terminal output, demo data.

A thin shell over `footfall.server.operations`, the same functions the JSON API calls.
"""
