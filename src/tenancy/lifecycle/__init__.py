"""The tenant lifecycle's service layer: moves recorded with their events, the notices' delivery,
and the sweep that applies what time has made due (shared/design/tenant-lifecycle.md)."""
