"""Who may read what: accounts, roles, tokens, sessions, login throttling and the audit log."""
