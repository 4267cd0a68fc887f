"""The ways out, downstream of `alerts`: the terminal follower, the webhook and Alertmanager forwarders."""
