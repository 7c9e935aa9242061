"""Where messages go: an outbox folder or an SMTP server (base), Microsoft Graph's
sendMail (graph), and the OAuth 2.0 tokens both of those may sign in with (oauth)."""
