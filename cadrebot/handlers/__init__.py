"""Channel-free conversation logic: intake forms, cases, the conversation service."""
