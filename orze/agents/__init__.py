"""Research agents: policies that map the campaign's history to new ideas (DESIGN.md §6)."""
