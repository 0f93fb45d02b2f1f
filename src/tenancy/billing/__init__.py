"""Recurring billing: PayFast subscriptions applied to their tenants (first charge, renewals,
cancellation), and the emails that tell the owner."""
