"""The SQLite history: connect, migrate, store polls, query as of a time, export."""
