"""From bytes to stored records, with no HTTP: wire protocols, the pipeline, the log.

`protocols` turn request bodies into `Incoming` events; `pipeline` applies the app's
schema, the text check and safety net, keyed hashes and the country; `segments` and
`log` keep acknowledged events in fsynced segment files and load them into the store.
"""
