"""`python -m tenancy`: the same as the `tenancy` command."""

from tenancy.cli import main

main()
