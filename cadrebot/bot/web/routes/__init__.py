"""One router module per feature of the web app."""
