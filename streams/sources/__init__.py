"""The ways in: the Python producer, the HTTP door (`POST /articles`) and files, the RSS/Atom poller.
All validate with the contract's rules and publish to `articles.raw`, keyed by article id."""
