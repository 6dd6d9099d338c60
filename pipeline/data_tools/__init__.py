"""Tools that make data for the pipeline: a new version of an external table and synthetic,
shifted spans for tests and benchmarks."""
