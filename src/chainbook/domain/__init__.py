"""Pure domain values: enums, instruments, commands, events, order state transitions."""
