"""The build engine: the stage/step loop over a plan, per-instruction handlers, cache records and outputs."""
