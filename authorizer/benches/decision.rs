//! Criterion benchmarks of the authorizer's hot paths (filled in below).

fn main() {}
