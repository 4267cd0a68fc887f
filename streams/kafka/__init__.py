"""Kafka: where the clients connect, with which security settings, the client factories and topic
creation."""
