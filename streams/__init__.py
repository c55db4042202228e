"""The Faust app: agents that turn accepted records into facts (CONTRACT section 4)."""
