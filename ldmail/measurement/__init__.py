"""Did it work: learning events from files and an LRS, survey answers, and the report
that compares treatment with holdout, as text, HTML, CSV and JSON."""
