"""CLI command implementations, one module per command; registered in rlscale/cli.py."""
