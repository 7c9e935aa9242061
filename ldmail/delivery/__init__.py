"""Getting messages out: enrol, plan what is due and send it at most once under a lock, and the
quiet path of a cron run that finds nothing to do."""
