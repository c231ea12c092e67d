"""The store: the one client to ClickHouse (embedded chDB or a server), the schema and its migrations, and the
agreement of raw spans with their typed rows."""
