"""The process shell around the core: the sequencer thread, accounts and API keys."""
