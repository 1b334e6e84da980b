"""Core: registries, configs, checkpoints, seeding and errors. Depends on stdlib, torch, numpy and pyyaml only."""
