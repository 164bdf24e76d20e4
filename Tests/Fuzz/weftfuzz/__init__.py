"""Structure-aware fuzzing of a running `weft serve`: generators per input family, a raw HTTP client,
and the campaign that sends cases and checks the node's invariants after each one."""
