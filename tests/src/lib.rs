//! Test support for Duck Duck Goose: the deterministic cluster simulator.
