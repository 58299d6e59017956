"""Wire protocols: each module decodes one format into validated events."""
