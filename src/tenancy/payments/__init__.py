"""Payment intake: PayFast ITNs parsed, checked, kept in the ledger, and turned into provisioning jobs."""
