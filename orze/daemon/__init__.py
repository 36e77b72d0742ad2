"""`orze run`: the node daemon (admission, scheduling, supervision, recording; DESIGN.md §1)."""
