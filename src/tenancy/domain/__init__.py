"""Pure domain: plans, records, identifiers and time. No I/O, no frameworks."""
