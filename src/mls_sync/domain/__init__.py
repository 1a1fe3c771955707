"""Pure domain rules: statuses, the RESO mapping, the transition policy, result types. No I/O."""
