"""The pure core of undecat: models, status machines and rules. Imports no I/O library."""
