"""The Footfall server: collector, storage, reports and the `footfall` command.

Layers, each depending only on those below it (checked by tests/test_layers.py):

    cli, web          the edges: argument parsing, HTTP, HTML
    ingest, reports   the pipeline that accepts events, and the named report queries
    protocols         wire formats decoded into records
    stores            DuckDB and friends; know nothing about HTTP
    errors, settings  shared vocabulary

Needs the `footfall[server]` extra.
"""
