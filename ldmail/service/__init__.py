"""The long-running process: `ldmail run` drives the LRS pull, the send and the sender's
mailbox on an interval, so it sits above delivery and the inbox it schedules."""
