"""The registry of what reports: engineers' phones and site devices, and their broker identities."""
