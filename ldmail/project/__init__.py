"""The campaign repository as typed data: settings, campaigns and audiences read and
checked with their file and line, the schemas editors use, the scaffold of a new one,
stand-in people, the calendar a campaign's steps fall on, and which of its private files
git tracks."""
