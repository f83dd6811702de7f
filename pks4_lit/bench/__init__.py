"""Benchmarks. Each module `pks4_lit.bench.<name>` exposes `add_arguments(parser)` and
`run(args) -> dict`; `pks4 bench <name>` prints the dict as JSON."""
