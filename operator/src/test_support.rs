//! Fixtures shared by the operator's unit tests.

use crate::crd::{FootballPrediction, FootballPredictionSpec};
use crate::validate::{Settings, Validated, validate};

/// A FootballPrediction as read from the API server, built from the spec's JSON.
pub(crate) fn fp_from(spec: serde_json::Value) -> FootballPrediction {
    let spec: FootballPredictionSpec = serde_json::from_value(spec).unwrap();
    let mut fp = FootballPrediction::new("prod", spec);
    fp.metadata.namespace = Some("football".into());
    fp.metadata.uid = Some("0e5b6a1c-1111-2222-3333-444455556666".into());
    fp.metadata.generation = Some(3);
    fp
}

pub(crate) fn validated(spec: serde_json::Value) -> Validated {
    let settings = Settings {
        operator_namespace: Some("fp-system".into()),
        pinned_api_image: None,
    };
    validate(&fp_from(spec), &settings).unwrap()
}
