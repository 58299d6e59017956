"""From bytes to stored records, with no HTTP: wire protocols, the pipeline, the spool.

`protocols` turn request bodies into `Incoming` events; `pipeline` applies the app's
schema, the text check and safety net, keyed hashes and the country; `spool` keeps
acknowledged events while the store is unavailable.
"""
