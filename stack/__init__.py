"""Running SiteWatch: settings, the embedded service stack and the `sitewatch` command line."""
