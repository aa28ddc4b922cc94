//! Shared by fp-operator and fp-api-server: pieces both sides must do the same way. One
//! redaction for every URL and error text, whichever program prints it and wherever it lands
//! (logs, a Job's termination message, the FootballPrediction status).
pub mod redact;
