"""HTTP only: the app factory, the collection routes, the JSON API, the dashboard and public pages.

The edge calls `ingest`, `query`, `auth` and `operations`; it never writes SQL.
"""
