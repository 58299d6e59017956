"""The only place with report SQL: filters, the named reports, and the public releases."""
