"""Pure core: Segment spec, config, FQL, mapping kit, destinations, outcomes. No I/O."""
