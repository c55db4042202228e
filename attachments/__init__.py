"""The files of practice records (CONTRACT §6.4): what an upload may be, and where it is kept."""
