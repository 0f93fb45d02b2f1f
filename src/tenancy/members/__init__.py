"""Team members: invitations, roles and seats per plan, for a tenant's people beyond its owner."""
