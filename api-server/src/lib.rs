//! fp-api-server: football data, Dixon-Coles predictions, JWT auth, health and metrics.
