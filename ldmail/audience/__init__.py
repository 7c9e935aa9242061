"""Who is in which campaign: people read from the HR/LMS export, their enrolments kept in
step with it, and the privacy moves (suppress, forget) that take someone out for good."""
