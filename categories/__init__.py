"""Text categories of practice records (CONTRACT §6.4), by a model that runs offline."""
