"""Running what the repository's authors wrote without trusting it: Jinja templates and
expressions in a sandbox with a budget of time and size, `when:` conditions, file paths
kept inside the project, and text made safe to show in a terminal, a log or a CSV."""
