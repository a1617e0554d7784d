"""The runtime of one rank: head or worker bookkeeping on top of the comms layer."""
