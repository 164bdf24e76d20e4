"""Fault campaigns against a real Weft cluster: processes, network faults, a checked workload and the
invariants every acknowledged span must satisfy. See docs/chaos.md."""
