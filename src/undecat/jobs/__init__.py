"""Use cases: one module per stage. Jobs see ports only, never an I/O library."""
