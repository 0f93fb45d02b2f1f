"""RB-001 as code: find, name, repair and verify failed provisioning, with an audit trail."""
