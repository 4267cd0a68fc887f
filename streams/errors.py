"""The project's errors: one root, so a caller can catch what streams raises and nothing else.

Library code raises these and never exits; the CLI turns a :class:`ConfigError` into its message
and exit code 2, and other :class:`StreamsError` into their message and exit code 1.
"""

from __future__ import annotations


class StreamsError(Exception):
    """Something streams cannot do, with a message that says what to do about it."""


class ConfigError(StreamsError):
    """A setting, a file it names or a missing dependency keeps a command from starting."""


class BrokerError(StreamsError):
    """Kafka cannot be reached or refused us: the message names the address and what to check."""


class DeliveryError(StreamsError):
    """A receiver refused an alert for good."""
