"""The contract: every topic's event model, the raw wire format's rules, the one topic table and the
JSON Schemas and OpenAPI description generated from them."""
