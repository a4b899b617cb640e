"""Plugins: the hook contract, the loaded plugin set, the per-request chain, values, stats and the developer kit."""
