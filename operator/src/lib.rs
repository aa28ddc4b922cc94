//! fp-operator: reconciles `FootballPrediction` resources into the prediction platform.
