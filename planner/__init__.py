"""Lake project discovery and import planning into batches that reuse warm sessions."""
