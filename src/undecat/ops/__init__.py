"""Operations: ``undecat health`` checks and the status report's rendering."""
